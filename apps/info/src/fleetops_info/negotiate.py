"""Content negotiation for ``GET /``: does the client prefer HTML over plain text?

The plain ``OK`` stays the default (scripts, health checkers and the capstone's clients send
``*/*`` or nothing); only a client that ranks ``text/html`` strictly above ``text/plain``, as
every browser does, gets the page.
"""

from __future__ import annotations

import re

# RFC 9110 qvalue: 0, 1, or up to three decimals.
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def _ranges(accept: str) -> list[tuple[str, str, float]]:
    """Parse ``Accept`` into (type, subtype, q); malformed entries are skipped, not guessed."""
    ranges = []
    for entry in accept.split(","):
        media, *params = entry.split(";")
        main, _, sub = media.strip().lower().partition("/")
        if not main or not sub:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                q = float(value) if _QVALUE.fullmatch(value) else -1.0
        if q >= 0:
            ranges.append((main, sub, q))
    return ranges


def _quality(ranges: list[tuple[str, str, float]], main: str, sub: str) -> float:
    """The q of the most specific range matching main/sub (exact beats type/* beats */*)."""
    best_specificity, best_q = -1, 0.0
    for r_main, r_sub, q in ranges:
        if (r_main, r_sub) == (main, sub):
            specificity = 2
        elif (r_main, r_sub) == (main, "*"):
            specificity = 1
        elif (r_main, r_sub) == ("*", "*"):
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best_specificity, best_q = specificity, q
    return best_q


def prefers_html(accept_header: str | None) -> bool:
    """True only when ``text/html`` gets a strictly higher effective q than ``text/plain``."""
    ranges = _ranges(accept_header or "")
    return _quality(ranges, "text", "html") > _quality(ranges, "text", "plain")
