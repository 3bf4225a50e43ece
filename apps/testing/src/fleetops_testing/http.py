"""One plain HTTP GET to a service the tests started on loopback."""

from __future__ import annotations

import http.client


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of ``GET path`` on 127.0.0.1:``port``, on a connection of its own."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
