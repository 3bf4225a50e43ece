"""HAProxy 2.6's answer to `show servers state` (format 1), as an lb of the fleet gives it, for
the tests of what reads it (the haproxy role's filters, the GCE reconciler)."""

from __future__ import annotations

HEADER = (
    "be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight"
    " srv_time_since_last_change srv_check_status srv_check_result srv_check_health"
    " srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord"
    " srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port"
)


def servers_state(rows: str) -> str:
    """The whole answer around ``rows`` (one line per server, HEADER's fields)."""
    return f"1\n# {HEADER}{rows}"
