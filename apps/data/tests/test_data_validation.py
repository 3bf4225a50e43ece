import pytest

from fleetops_data import validation
from fleetops_data.validation import ValidationError


def test_credentials():
    assert validation.credentials({"username": "bob", "password": "pw", "x": 1}) == ("bob", "pw")
    # Surrounding spaces are part of a password and are kept.
    assert validation.credentials({"username": "bob", "password": " pw "}) == ("bob", " pw ")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "bob"},
        {"password": "pw"},
        {"username": "", "password": "pw"},
        {"username": "bob", "password": ""},
        {"username": 1, "password": "pw"},
        {"username": "bob", "password": None},
        {"username": ["bob"], "password": "pw"},
        {"username": "bob", "password": {"a": 1}},
        {"username": "bob", "password": True},
        {"username": "\ud800", "password": "pw"},  # JSON allows lone surrogates, UTF-8 not
        {"username": "b" * 65, "password": "pw"},
        {"username": "bob", "password": "p" * 1025},
    ],
)
def test_bad_credentials(body):
    with pytest.raises(ValidationError):
        validation.credentials(body)


def test_new_quote_is_stripped():
    assert validation.new_quote({"author": "  Seneca ", "text": "\tLive.\n"}) == (
        "Seneca",
        "Live.",
    )


def test_new_quote_limits_are_inclusive_after_stripping():
    author, text = "a" * 100, "t" * 1000
    assert validation.new_quote({"author": f" {author} ", "text": f"  {text}  "}) == (
        author,
        text,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "t"}, "author"),
        ({"author": "a"}, "text"),
        ({"author": "", "text": "t"}, "author"),
        ({"author": "   ", "text": "t"}, "author"),
        ({"author": "a", "text": " \n\t "}, "text"),
        ({"author": 5, "text": "t"}, "author"),
        ({"author": "a", "text": None}, "text"),
        ({"author": "a", "text": ["t"]}, "text"),
        ({"author": "a", "text": False}, "text"),
        ({"author": "a" * 101, "text": "t"}, "author"),
        ({"author": "a", "text": "t" * 1001}, "text"),
        ({"author": "a", "text": "bad \udfff surrogate"}, "text"),
    ],
)
def test_bad_new_quote_names_the_field(body, field):
    with pytest.raises(ValidationError, match=field):
        validation.new_quote(body)


@pytest.mark.parametrize(
    ("limit", "offset", "expected"),
    [
        (None, None, (20, 0)),
        ("1", None, (1, 0)),
        ("100", "0", (100, 0)),
        ("007", "40", (7, 40)),
        (None, "1000000000", (20, 1_000_000_000)),
    ],
)
def test_paging(limit, offset, expected):
    assert validation.paging(limit, offset) == expected


@pytest.mark.parametrize(
    ("limit", "offset"),
    [
        ("0", None),
        ("101", None),
        ("-1", None),
        ("", None),
        ("abc", None),
        (" 5", None),
        ("+5", None),
        ("1.5", None),
        ("1_0", None),
        ("\u0663", None),  # an Arabic-Indic digit: int() would accept it
        ("5\n", None),
        (None, "-1"),
        (None, ""),
        (None, "1000000001"),
        (None, "99999999999999999999999"),
        (None, "0x10"),
    ],
)
def test_bad_paging(limit, offset):
    with pytest.raises(ValidationError):
        validation.paging(limit, offset)


def test_check_new_user():
    validation.check_new_user("carol", "pw", "editor")
    with pytest.raises(ValidationError, match="role"):
        validation.check_new_user("carol", "pw", "root")
    with pytest.raises(ValidationError):
        validation.check_new_user("carol", "", "viewer")
