"""The services' environment, as python_service renders it from its defaults and vars."""

from __future__ import annotations

import json

import pytest

from tests.unit.test_plugins_load import ansible


def rendered_environment(tmp_path, *extra: str) -> dict[str, str]:
    out = tmp_path / "env.json"
    args = {"content": "{{ _python_service_environment | to_json }}", "dest": str(out)}
    done = ansible(
        "ansible", "localhost", "-i", "localhost,", "-c", "local",
        "-e", "@roles/python_service/defaults/main.yml",
        "-e", "@roles/python_service/vars/main.yml",
        "-e", "python_service_port=5555", *extra,
        "-m", "ansible.builtin.copy", "-a", json.dumps(args),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize(("extra", "fall"), [((), "2"), (("-e", "haproxy_check_fall=3"), "3")])
def test_the_lame_duck_counts_the_fall_haproxy_checks_with(tmp_path, extra, fall):
    # A lame duck that left after fewer 503s than HAProxy's fall would be marked down on a
    # refused connection: the two must not drift apart.
    env = rendered_environment(tmp_path, *extra)
    assert env["DRAIN_CHECK_FALL"] == fall
    assert env["DRAIN_CHECK_GAP_SECONDS"] == "5"
    assert env["PORT"] == "5555"
