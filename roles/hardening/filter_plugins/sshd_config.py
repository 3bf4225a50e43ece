"""Give /etc/ssh/sshd_config back to the distribution and the platform.

The role's settings live in a drop-in (/etc/ssh/sshd_config.d/); the main file belongs to the
distribution and to the platform's agent, which writes a delimited block into it (Google's guest
agent prepends its OS Login block with AuthorizedKeysCommand, and appends a Match block for
two-factor service accounts). Earlier versions of this role replaced the main file with their
own template; on such a host the main file is rebuilt from the distribution's copy, with every
platform block the agent has written since kept where the agent puts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# A line of every main file the earlier role wrote, under its `ansible_managed` header (which
# each site may reword, so this line is what identifies the file).
OLD_ROLE_LINE = (
    "# Keys only, modern algorithms only, nothing forwarded: hosts are managed, not used."
)


class SshdConfigError(ValueError):
    """The main file cannot be split safely (a platform block that never ends)."""


def written_by_old_role(text: str) -> bool:
    """Whether ``text`` is a main sshd_config written by the earlier, whole-file role."""
    return OLD_ROLE_LINE in text.splitlines()


def platform_blocks(text: str, markers: Iterable[Mapping[str, str]]) -> tuple[list[str], list[str]]:
    """The platform blocks of ``text``: those before any other line (``leading``: the agent
    prepends its block, so it precedes, and wins over, everything else) and the rest
    (``trailing``: Match blocks, which must stay last). Each block runs from its begin line to
    its end line, both included, and ends with a newline."""
    pairs = [(m["begin"], m["end"]) for m in markers]
    leading: list[str] = []
    trailing: list[str] = []
    seen_other = False
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        end = next((e for b, e in pairs if stripped == b), None)
        if end is None:
            seen_other = True
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].strip() != end:
            j += 1
        if j == len(lines):
            raise SshdConfigError(f"platform block {stripped!r} has no end line {end!r}")
        block = "".join(lines[i : j + 1])
        if not block.endswith("\n"):
            block += "\n"
        (trailing if seen_other else leading).append(block)
        i = j + 1
    return leading, trailing


def restored_main(current: str, distribution: str, markers: Iterable[Mapping[str, str]]) -> str:
    """The main file a host hardened by the earlier role should have: the distribution's file,
    preceded by the platform's leading blocks and followed by its trailing ones, as in
    ``current``."""
    leading, trailing = platform_blocks(current, markers)
    body = distribution if distribution.endswith("\n") or not distribution else distribution + "\n"
    return "".join(leading) + body + "".join(trailing)


class FilterModule:
    """Ansible entry point: ``sshd_from_old_role`` and ``sshd_restored_main``."""

    def filters(self) -> dict[str, Any]:
        return {"sshd_from_old_role": written_by_old_role, "sshd_restored_main": restored_main}
