"""cidr.py: every prefix both ways, against masks computed here with integer arithmetic."""

import pytest

from fleetops_info.cidr import cidr_to_mask, mask_to_cidr

ALL_ONES = 0xFFFFFFFF


def dotted(number: int) -> str:
    return ".".join(str((number >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def mask_bits(prefix: int) -> int:
    return (ALL_ONES << (32 - prefix)) & ALL_ONES


EXPECTED = {prefix: dotted(mask_bits(prefix)) for prefix in range(1, 33)}


def test_the_independent_expectations_look_right():
    # Guard the oracle itself with the values everyone knows by heart.
    assert EXPECTED[1] == "128.0.0.0"
    assert EXPECTED[8] == "255.0.0.0"
    assert EXPECTED[18] == "255.255.192.0"  # the capstone README's example
    assert EXPECTED[24] == "255.255.255.0"
    assert EXPECTED[32] == "255.255.255.255"


@pytest.mark.parametrize("prefix", range(1, 33))
def test_every_prefix_converts_to_its_mask(prefix):
    assert cidr_to_mask(str(prefix)) == EXPECTED[prefix]


@pytest.mark.parametrize("prefix", range(1, 33))
def test_every_mask_converts_to_its_prefix(prefix):
    assert mask_to_cidr(EXPECTED[prefix]) == str(prefix)


def test_capstone_examples():
    assert cidr_to_mask("18") == "255.255.192.0"
    assert mask_to_cidr("255.128.0.0") == "9"


@pytest.mark.parametrize(
    "value",
    [
        # docs/api.md's list
        "0", "33", "-1", "a", "24.5", "0x10", "",
        # signs, spaces, leading zeros, other spellings int() would accept
        "+24", " 24", "24 ", "2 4", "24\n", "\t24", "024", "00", "01", "1_0", "1e1",
        # digits that are not ASCII: fullwidth, Arabic-Indic, superscript
        "\uff12\uff14", "\u0662\u0664", "\u00b2",
        # out of range or not a number at all
        "100", "320", "4294967296", "-0", "24/", "/24", "24.0", "\u0663", "None", "nan",
    ],
)  # fmt: skip
def test_invalid_prefixes(value):
    assert cidr_to_mask(value) is None


@pytest.mark.parametrize(
    "value",
    [
        # docs/api.md's list
        "0.0.0.0", "0.0.0.256", "128.128.128.128", "255.0.255.0", "160.0.0.0", "1",  # noqa: S104
        "192.168.1.2.3", "255.255.0.255", "255.255.255", "-1.0.0.0",
        # leading zeros, whitespace, other separators and notations
        "255.255.255.00", "255.255.255.000", "0255.0.0.0", "255.255.255.01",
        " 255.0.0.0", "255.0.0.0 ", "255.0.0.0\n", "255. 0.0.0", "255..0.0", "255.0.0.",
        ".255.0.0.0", "255.255.255.255.", "255,255,255,0", "255.255.255.0/24",
        "0xff.0.0.0", "255.255.255.0x0", "", "...", "4294967040", "::ffff:255.255.255.0",
        # octets out of range
        "256.0.0.0", "1000.0.0.0", "255.255.255.999",
        # non-ASCII digits
        "\uff12\uff15\uff15.0.0.0", "255.0.0.\u0660",
        # host masks (the inverse notation) are not netmasks
        "0.0.0.255", "0.255.255.255", "0.0.0.1",
    ],
)  # fmt: skip
def test_invalid_masks(value):
    assert mask_to_cidr(value) is None


@pytest.mark.parametrize("prefix", range(1, 33))
def test_flipping_any_bit_of_a_mask_is_valid_only_if_it_stays_contiguous(prefix):
    # 1,024 near-miss masks: one flipped bit yields another valid mask only at the boundary.
    for bit in range(32):
        candidate = mask_bits(prefix) ^ (1 << bit)
        ones = bin(candidate).count("1")
        contiguous = candidate != 0 and candidate == mask_bits(ones)
        expected = str(ones) if contiguous else None
        assert mask_to_cidr(dotted(candidate)) == expected, dotted(candidate)
