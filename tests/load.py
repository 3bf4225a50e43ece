"""A steady, bounded request load that counts every failure (for tests, not benchmarks).

Each worker sends requests on its own keep-alive connection (reconnecting after errors) until
``stop()`` or the deadline, whichever comes first; the request count is capped too. The workers
share a request rate (``rate`` per second, 25 by default; ``None``: back to back). A paced load
still puts a request into every 40 ms window a drain or a restart could drop, and leaves the
machine's CPU to the fleet under test: flat out, four workers (each mix with a scrypt login)
kept two cores at 0 % idle, and `rolling_update info` took 3 min for two nodes while one
`site.yml` with a new release ran past 9 min. A failure is any non-2xx status or any connection
error.
Requests are paths (GET) or :class:`Call` objects (any method, body and headers), taken in turn.

Like every HTTP/1.1 client (RFC 9112, 9.3.1), a worker sends an idempotent request (GET, HEAD)
once more on a new connection when a *reused* keep-alive connection was closed under it before
any answer: the server may close an idle connection at any time (HAProxy's old workers do on a
reload), and that race is invisible to users of browsers or urllib3. Such resends are counted
in ``retried``, never hidden; anything else, and any POST, counts as a failure.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class LoadResult:
    sent: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    retried: int = 0
    # Answered (2xx) with the load's ``marker`` header (a test release's sign): by method and path.
    marked: Counter[str] = field(default_factory=Counter)
    # Each failed or marked request: when it was sent (time.monotonic()) and its failure reason
    # or "marked <method> <path>": how long users saw a fault, and where.
    bad: list[tuple[float, str]] = field(default_factory=list)


IDEMPOTENT = frozenset({"GET", "HEAD"})


class SteadyLoad:
    def __init__(
        self,
        port: int,
        paths: list[str | Call],
        *,
        workers: int = 4,
        max_seconds: float = 300,
        max_requests: int = 200_000,
        headers: dict[str, str] | None = None,
        rate: float | None = 25.0,
        marker: str | None = None,
    ) -> None:
        self.port, self.paths, self.workers = port, paths, workers
        self.marker = marker
        self.interval = workers / rate if rate else 0.0
        self.started = time.monotonic()
        self.deadline = self.started + max_seconds
        self.max_requests = max_requests
        self.headers = headers or {}
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(workers)
        ]

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def finished(self) -> bool:
        """Every worker is done (its time, the request budget, or a stop)."""
        return not any(thread.is_alive() for thread in self._threads)

    def stop(self) -> LoadResult:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        return self.result

    def _record(self, reason: str | None, marked: str | None = None, at: float = 0.0) -> bool:
        with self._lock:
            self.result.sent += 1
            if reason:
                self.result.failed += 1
                self.result.reasons[reason] += 1
            elif marked:
                self.result.marked[marked] += 1
            if reason or marked:
                self.result.bad.append((at, reason or f"marked {marked}"))
            return self.result.sent < self.max_requests

    def _send(
        self, conn: http.client.HTTPConnection, call: Call
    ) -> tuple[http.client.HTTPResponse, bytes]:
        conn.request(
            call.method, call.path, body=call.body, headers={**self.headers, **call.headers}
        )
        res = conn.getresponse()
        return res, res.read()

    def _judge(
        self, call: Call, res: http.client.HTTPResponse, body: bytes
    ) -> tuple[str | None, str | None]:
        """An answer's failure reason (not 2xx), and whether it carries the marker header."""
        marked = (
            f"{call.method} {call.path}" if self.marker and res.getheader(self.marker) else None
        )
        if 200 <= res.status < 300:
            return None, marked
        # The body's start says who answered (HAProxy's error or the app's).
        said = body[:80].decode(errors="replace")
        return f"{call.method} {call.path} {res.status} {said}", marked

    def _run(self, worker: int) -> None:
        conn: http.client.HTTPConnection | None = None
        reused = False  # the connection has answered before (a keep-alive connection)
        i = worker
        # Workers start spread over one interval, so the paced requests do not come in bursts.
        next_at = time.monotonic() + self.interval * worker / self.workers
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            if self.interval:
                # Behind schedule (a slow answer): go on at once, without a catch-up burst.
                next_at = max(next_at, time.monotonic())
                if self._stop.wait(next_at - time.monotonic()):
                    break
                next_at += self.interval
            item = self.paths[i % len(self.paths)]
            call = item if isinstance(item, Call) else Call("GET", item)
            i += 1
            reason = marked = None
            began = time.monotonic()
            try:
                if conn is None:
                    conn, reused = self._connect(), False
                try:
                    res, body = self._send(conn, call)
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    if not (reused and call.method in IDEMPOTENT):
                        raise
                    conn.close()
                    conn, reused = self._connect(), False
                    with self._lock:
                        self.result.retried += 1
                    res, body = self._send(conn, call)
                reused = True
                reason, marked = self._judge(call, res, body)
                if res.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as err:
                reason = f"{call.method} {call.path} {type(err).__name__}"
                if conn is not None:
                    conn.close()
                conn = None
            if not self._record(reason, marked, began):
                break
        if conn is not None:
            conn.close()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
