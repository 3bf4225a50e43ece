"""The HTML page a browser gets for ``GET /``: one self-contained document, no assets.

Everything that comes from outside (the quote from data, the version from the environment)
is HTML-escaped: a quote is user-submitted text and must not become markup.
"""

from __future__ import annotations

from html import escape

from fleetops_info.dataclient import Quote

# (method, path, what it does, whether a plain link can open it)
ENDPOINTS = (
    ("GET", "/quote", "a random quote as JSON", True),
    ("GET", "/version", "the running version", True),
    ("GET", "/_health", "liveness of info itself", True),
    ("GET", "/_ready", "readiness, including the data service", True),
    ("POST", "/login", "form or JSON username, password → a JWT", False),
    ("GET", "/cidr-to-mask?value=24", "prefix length → netmask (Bearer JWT)", False),
    ("GET", "/mask-to-cidr?value=255.255.0.0", "netmask → prefix length (Bearer JWT)", False),
    ("POST", "/quotes", "JSON author, text → a stored quote (editor or admin)", False),
)

_STYLE = """
:root { color-scheme: light dark; --accent: #2563eb; --muted: #6b7280; --warn: #b45309; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
main { max-width: 42rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
h1 { font-size: 1.6rem; margin: 0 0 1rem; }
h2 { font-size: 1.1rem; margin: 2rem 0 .5rem; }
blockquote { margin: 0; padding: 1rem 1.25rem; border-left: 4px solid var(--accent);
  background: rgba(37, 99, 235, .08); border-radius: .25rem; overflow-wrap: anywhere; }
blockquote p { margin: 0 0 .5rem; font-size: 1.15rem; }
blockquote footer { color: var(--muted); }
.notice { padding: 1rem 1.25rem; border-left: 4px solid var(--warn);
  background: rgba(180, 83, 9, .1); border-radius: .25rem; }
ul { padding: 0; list-style: none; }
li { padding: .4rem 0; border-bottom: 1px solid rgba(127, 127, 127, .25);
  overflow-wrap: anywhere; }
code { font: .9em ui-monospace, SFMono-Regular, Menlo, monospace; }
.method { display: inline-block; min-width: 3.5rem; font-weight: 600; }
.what { display: block; color: var(--muted); font-size: .9rem; }
a { color: var(--accent); }
footer.version { margin-top: 2rem; color: var(--muted); font-size: .85rem; }
"""


def _quote_section(quote: Quote | None, *, data_available: bool) -> str:
    if not data_available:
        return (
            '<p class="notice" role="status"><strong>Data unavailable.</strong> '
            "The quote service cannot be reached right now; the API below still "
            "answers what it can.</p>"
        )
    if quote is None:
        return '<p class="notice" role="status">No quotes stored yet.</p>'
    return (
        f"<blockquote><p>{escape(quote.text)}</p>"
        f"<footer>— {escape(quote.author)}</footer></blockquote>"
    )


def _endpoint_item(method: str, path: str, what: str, linkable: bool) -> str:
    code = f"<code>{escape(path)}</code>"
    label = f'<a href="{escape(path)}">{code}</a>' if linkable else code
    return (
        f'<li><span class="method">{method}</span> {label}'
        f'<span class="what">{escape(what)}</span></li>'
    )


def render_page(version: str, quote: Quote | None, *, data_available: bool = True) -> str:
    """The whole page; ``data_available=False`` renders the notice instead of a quote."""
    endpoints = "\n".join(_endpoint_item(*endpoint) for endpoint in ENDPOINTS)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fleetops info</title>
<style>{_STYLE}</style>
</head>
<body>
<main>
<h1>fleetops info</h1>
{_quote_section(quote, data_available=data_available)}
<h2>API</h2>
<ul>
{endpoints}
</ul>
<p>Log in with <code>curl -d "username=…&amp;password=…" /login</code>, then send
<code>Authorization: Bearer &lt;token&gt;</code>.</p>
<footer class="version">version <code>{escape(version)}</code></footer>
</main>
</body>
</html>
"""
