"""A bound on how many logins a data node hashes at once, so logins cannot starve reads.

One login costs one scrypt computation (~50 ms of a core, see :mod:`fleetops_data.passwords`),
and hashlib runs it outside the GIL, so a node hashes as many at once as it has cores; more at
once only makes each slower. Without a bound, a burst of logins takes every waitress thread and
the quote reads queue behind it. The gate lets ``workers`` logins hash and ``waiting`` more
wait, each at most ``wait_seconds``; any other login is turned away at once with
:class:`KdfBusy` (the API answers 503 with Retry-After), so at most ``workers + waiting``
threads ever serve logins and the rest stay free for reads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class KdfBusy(Exception):  # noqa: N818 -- names the condition
    """Every hashing slot is taken and the waiting room is full (or the wait ran out)."""


class KdfGate:
    def __init__(self, workers: int, waiting: int, wait_seconds: float) -> None:
        if workers < 1 or waiting < 0 or wait_seconds < 0:
            raise ValueError("workers >= 1, waiting >= 0 and wait_seconds >= 0")
        self.workers, self.waiting, self.wait_seconds = workers, waiting, wait_seconds
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._admitted = 0  # hashing or waiting
        self.turned_away = 0

    @property
    def admitted(self) -> int:
        """Logins hashing or waiting now."""
        return self._admitted

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a hashing slot for the block, or raise :class:`KdfBusy` without waiting long."""
        with self._lock:
            if self._admitted >= self.workers + self.waiting:
                self.turned_away += 1
                raise KdfBusy("too many logins at once")
            self._admitted += 1
        try:
            if not self._slots.acquire(timeout=self.wait_seconds):
                with self._lock:
                    self.turned_away += 1
                raise KdfBusy("too many logins at once")
            try:
                yield
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._admitted -= 1
