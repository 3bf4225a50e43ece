"""A steady, bounded request load that counts every failure (for tests, not benchmarks).

Each worker sends requests back to back on its own keep-alive connection (reconnecting after
errors) until ``stop()`` or the deadline, whichever comes first; the request count is capped
too. A failure is any non-2xx status or any connection error. Requests are paths (GET) or
:class:`Call` objects (any method, body and headers), taken in turn.
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
    ) -> None:
        self.port, self.paths, self.workers = port, paths, workers
        self.deadline = time.monotonic() + max_seconds
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

    def stop(self) -> LoadResult:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        return self.result

    def _record(self, reason: str | None) -> bool:
        with self._lock:
            self.result.sent += 1
            if reason:
                self.result.failed += 1
                self.result.reasons[reason] += 1
            return self.result.sent < self.max_requests

    def _run(self, worker: int) -> None:
        conn: http.client.HTTPConnection | None = None
        i = worker
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            item = self.paths[i % len(self.paths)]
            call = item if isinstance(item, Call) else Call("GET", item)
            path = call.path
            i += 1
            reason = None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request(
                    call.method, path, body=call.body, headers={**self.headers, **call.headers}
                )
                res = conn.getresponse()
                res.read()
                if not 200 <= res.status < 300:
                    reason = f"{call.method} {path} {res.status}"
                if res.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as err:
                reason = f"{call.method} {path} {type(err).__name__}"
                if conn is not None:
                    conn.close()
                conn = None
            if not self._record(reason):
                break
        if conn is not None:
            conn.close()
