"""negotiate.py: only clients that rank text/html above text/plain get the page."""

import pytest

from fleetops_info.negotiate import prefers_html

CHROME = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    "accept",
    [
        CHROME,
        FIREFOX,
        "text/html",
        "TEXT/HTML",
        " text/html ; q=1 ",
        "text/html;q=0.5, text/plain;q=0.4",
        "text/*;q=0.9, text/html",
        "*/*;q=0.1, text/html",
        "text/html;level=1;q=0.9, text/plain;q=0.8",
        # the first of two exact entries counts
        "text/html;q=0.8, text/html;q=0.1, text/plain;q=0.5",
        "text/plain;q=0, text/html;q=0.001",
    ],
)
def test_browsers_and_explicit_preferences_get_html(accept):
    assert prefers_html(accept) is True


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "",
        "*/*",
        "text/*",
        "text/plain",
        "application/json",
        "text/html, text/plain",  # a tie keeps the plain default
        "text/plain;q=0.5, text/html;q=0.4",
        "text/html;q=0, */*",
        "text/html;q=abc",  # malformed entries are skipped, not guessed
        "text/html;q=1.5",
        "text/html;q=.5",
        "text/html;q=0.5555",
        "text/html;q=",
        "garbage",
        "text/",
        "/html",
        ",,;;",
        "text/plain, text/html;q=1.0000",
    ],
)
def test_everything_else_keeps_plain_text(accept):
    assert prefers_html(accept) is False
