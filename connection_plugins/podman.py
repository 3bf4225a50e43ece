"""containers.podman's podman connection, with pipelining: one `podman exec` per task.

Molecule's podman driver gives its instances the connection `podman`; the role scenarios put
this directory on ANSIBLE_CONNECTION_PLUGINS (.config/molecule/config.yml), so that short name
resolves here. Without pipelining every task costs four `podman exec` calls (mkdir, chmod, run,
rm) and a copy into the container; with it, one call that reads the module from stdin. Those
calls were most of a role scenario's time on two busy cores. The fleet itself uses SSH.
"""

from __future__ import annotations

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import (
    DOCUMENTATION,  # noqa: F401 (the options are upstream's)
)
from ansible_collections.containers.podman.plugins.connection.podman import (
    Connection as PodmanConnection,
)


class Connection(PodmanConnection):
    """Upstream's connection, with stdin passed on, so Ansible may pipeline modules."""

    transport = "podman"
    # Upstream disables pipelining because its `podman exec` has no -i and drops stdin.
    has_pipelining = True

    @ensure_connect
    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = False
    ) -> tuple[int, bytes, bytes]:
        if in_data is None:
            return super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        args = ["exec", "-i"]
        if self.user:
            args += ["--user", self.user]
        command = shlex.split(to_native(cmd, errors="surrogate_or_strict"))
        return self._podman(args, command, in_data)
