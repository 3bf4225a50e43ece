"""What an ansible-playbook run printed (Ansible's default callback), read back for assertions."""

from __future__ import annotations

import re

PLAY = re.compile(r"^PLAY \[(.*)\] \*+\s*$")
# "changed: [data1]", "changed: [data1 -> lb1]", "changed: [mon1] => (item=...)"
CHANGED = re.compile(r"^changed: \[([^\]\s]+)")


def changes_by_play(stdout: str) -> dict[str, set[str]]:
    """The plays in which a task or handler changed something, and the hosts it ran for."""
    changes: dict[str, set[str]] = {}
    play = ""
    for line in stdout.splitlines():
        if match := PLAY.match(line):
            play = match.group(1)
        elif match := CHANGED.match(line):
            changes.setdefault(play, set()).add(match.group(1))
    return changes
