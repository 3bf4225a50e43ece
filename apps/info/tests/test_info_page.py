"""page.py: the browser page escapes what it shows and still renders without data."""

import re

from fleetops_info.dataclient import Quote
from fleetops_info.page import ENDPOINTS, render_page

HOSTILE = Quote(id=7, author='"Eve" & <b>Mallory</b>', text="<script>alert('x')</script>")


def test_quote_text_author_and_version_are_escaped():
    html = render_page("<img src=x onerror=alert(1)>", HOSTILE)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "&quot;Eve&quot; &amp; &lt;b&gt;Mallory&lt;/b&gt;" in html
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_shows_the_quote_and_the_version():
    html = render_page("1.2.3", Quote(id=1, author="Ada Lovelace", text="Imagination."))
    assert "<blockquote><p>Imagination.</p><footer>— Ada Lovelace</footer></blockquote>" in html
    assert "version <code>1.2.3</code>" in html
    assert "unavailable" not in html


def test_data_down_renders_a_notice_instead_of_a_quote():
    html = render_page("1.2.3", None, data_available=False)
    assert "Data unavailable." in html
    assert "<blockquote>" not in html
    assert "version <code>1.2.3</code>" in html  # the rest of the page is intact
    assert all(path in html for _, path, _, _ in ENDPOINTS)


def test_no_quotes_yet_is_not_reported_as_an_outage():
    html = render_page("1.2.3", None)
    assert "No quotes stored yet." in html
    assert "unavailable" not in html


def test_links_to_every_api_endpoint():
    html = render_page("v", None)
    for method, path, _, linkable in ENDPOINTS:
        assert f'<span class="method">{method}</span>' in html
        assert (f'href="{path}"' in html) is linkable
    assert 'href="/quote"' in html
    assert "/cidr-to-mask?value=24" in html


def test_self_contained_and_phone_friendly():
    html = render_page("v", HOSTILE)
    assert html.startswith("<!DOCTYPE html>")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert '<meta charset="utf-8">' in html
    assert "<style>" in html
    assert "max-width" in html
    # no external assets: no scripts, stylesheets, images or absolute URLs
    assert not re.search(r"<(script|link|img|iframe)\b", html)
    assert "http://" not in html
    assert "https://" not in html
