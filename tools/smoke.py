"""Smoke test of a fleet's public entry: the few calls that prove the whole path works.

Usage: python tools/smoke.py http://127.0.0.1:8080
Exits non-zero, saying what failed, unless / , /_health, /version, login and a conversion
(info → HAProxy → data → MariaDB) all answer as they should.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def call(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def smoke(base: str) -> list[str]:
    problems = []
    if call(f"{base}/") != (200, b"OK"):
        problems.append("GET / did not answer OK")
    if call(f"{base}/_health") != (200, b"HEALTHY"):
        problems.append("GET /_health did not answer HEALTHY")
    status, version = call(f"{base}/version")
    if status != 200:
        problems.append(f"GET /version answered {status}")
    form = urllib.parse.urlencode({"username": "antonio", "password": "cotorro"}).encode()
    status, body = call(f"{base}/login", data=form)
    if status != 200:
        problems.append(f"POST /login answered {status}: {body[:200]!r}")
        return problems
    token = json.loads(body)["data"]
    status, body = call(
        f"{base}/cidr-to-mask?value=24", headers={"Authorization": f"Bearer {token}"}
    )
    if status != 200 or json.loads(body).get("output") != "255.255.255.0":
        problems.append(f"GET /cidr-to-mask answered {status}: {body[:200]!r}")
    if not problems:
        print(f"smoke test passed: {base} serves version {version.decode()}")
    return problems


def main() -> int:
    base = sys.argv[1].rstrip("/")
    deadline = time.monotonic() + 60
    while True:
        try:
            problems = smoke(base)
        except OSError as err:
            problems = [f"{base} unreachable: {err}"]
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(2)
    for problem in problems:
        print(f"smoke test FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
