"""Conversions between CIDR prefix lengths and dotted-quad netmasks.

Both directions accept only the canonical spelling: ASCII digits, no sign, no whitespace, no
leading zeros. ``int()`` is more forgiving (``int(" +24")``, fullwidth digits), and an API that
silently normalises input makes the echoed ``input`` disagree with what was converted.
"""

from __future__ import annotations

import ipaddress
import re

# 1..32; "0" is excluded because a /0 mask (0.0.0.0) is invalid in the capstone too.
_PREFIX = re.compile(r"[1-9]|[12][0-9]|3[0-2]")
_OCTET = r"(?:0|[1-9][0-9]{0,2})"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_ALL_ONES = 0xFFFFFFFF


def cidr_to_mask(value: str) -> str | None:
    """``"24"`` → ``"255.255.255.0"``; None when ``value`` is not a prefix length 1..32."""
    if not _PREFIX.fullmatch(value):
        return None
    return str(ipaddress.IPv4Network(f"0.0.0.0/{value}").netmask)


def mask_to_cidr(value: str) -> str | None:
    """``"255.255.0.0"`` → ``"16"``; None unless ``value`` is a contiguous, non-empty mask."""
    if not _DOTTED_QUAD.fullmatch(value):
        return None
    try:
        mask = int(ipaddress.IPv4Address(value))
    except ipaddress.AddressValueError:  # an octet above 255
        return None
    host_bits = ~mask & _ALL_ONES
    # A contiguous mask's host part is 2**k - 1, so adding one clears every bit of it.
    if mask == 0 or host_bits & (host_bits + 1):
        return None
    return str(32 - host_bits.bit_length())
