"""Load up to and past saturation, for the overload tests and `make bench` (asyncio, HTTP/1.1).

``closed_loop`` keeps ``concurrency`` requests in flight back to back: its throughput is the
saturation rate. ``open_loop`` sends at a fixed rate whatever the answers, as many independent
users do, so past saturation the excess has to go somewhere: a queue that grows (latency, then
timeouts) or a fast refusal. Every request is bounded by ``timeout`` and each run by its
duration and a request cap; both stop by themselves. Plain HTTP to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

MAX_CONNECTIONS = 2000
MAX_REQUESTS = 200_000


class ClientCapped(Exception):  # noqa: N818 -- names the condition
    """The load generator has MAX_CONNECTIONS open already: the request was never sent."""


@dataclass
class Outcome:
    status: int  # 0: no answer (see ``error``); -1: never sent (the client's connection cap)
    ms: float
    retry_after: str | None = None
    error: str = ""


@dataclass
class Sample:
    """What a run saw: every request's outcome, and the run's wall time."""

    seconds: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.outcomes)

    @property
    def statuses(self) -> Counter[int]:
        return Counter(o.status for o in self.outcomes)

    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if 200 <= o.status < 300]

    def shed(self) -> list[Outcome]:
        """Refused fast on purpose: 503 or 429, each saying when to come back."""
        return [o for o in self.outcomes if o.status in (429, 503)]

    def timed_out(self) -> list[Outcome]:
        """No answer in time: none within the timeout, a refused or cut connection, or a 504."""
        return [o for o in self.outcomes if o.status in (0, 504)]

    def unsent(self) -> list[Outcome]:
        """Requests the generator itself could not send (its connection cap): not the fleet's."""
        return [o for o in self.outcomes if o.status == -1]

    def ok_rps(self) -> float:
        return len(self.ok()) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float, outcomes: list[Outcome] | None = None) -> float:
        """The q-th percentile latency in ms (of the answered 2xx, by default)."""
        values = sorted(o.ms for o in (self.ok() if outcomes is None else outcomes))
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q / 100 * len(values)))]


class _Client:
    """Keep-alive connections to one port, reused, opened as needed up to a cap."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open = 0

    async def request(self, path: str) -> Outcome:
        began = time.perf_counter()
        conn = None
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self._connection()
                outcome = await self._exchange(conn, path, began)
        except ClientCapped:
            return Outcome(-1, 0.0, error="client connection cap")
        except TimeoutError:
            self._drop(conn)
            return Outcome(0, (time.perf_counter() - began) * 1000, error="timeout")
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self._drop(conn)
            return Outcome(0, (time.perf_counter() - began) * 1000, error=type(exc).__name__)
        return outcome

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        if self.open >= MAX_CONNECTIONS:
            raise ClientCapped
        self.open += 1
        try:
            return await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            self.open -= 1
            raise

    async def _exchange(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], path: str, began: float
    ) -> Outcome:
        reader, writer = conn
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in head[1:] if line)
        }
        await reader.readexactly(int(headers.get("content-length", "0")))
        ms = (time.perf_counter() - began) * 1000
        if headers.get("connection", "").lower() == "close":
            self._drop(conn)
        else:
            self.idle.append(conn)
        return Outcome(status, ms, headers.get("retry-after"))

    def _drop(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        if conn is not None:
            conn[1].close()
            self.open -= 1

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def _closed(port: int, paths: list[str], concurrency: int, seconds: float) -> Sample:
    client, sample = _Client(port, timeout=10.0), Sample()
    end = time.monotonic() + seconds

    async def user(offset: int) -> None:
        i = offset
        while time.monotonic() < end and sample.sent < MAX_REQUESTS:
            sample.outcomes.append(await client.request(paths[i % len(paths)]))
            i += 1

    began = time.monotonic()
    await asyncio.gather(*(user(n) for n in range(concurrency)))
    sample.seconds = time.monotonic() - began
    client.close()
    return sample


async def _open(port: int, paths: list[str], rate: float, seconds: float, timeout: float) -> Sample:
    client, sample = _Client(port, timeout), Sample()
    total = min(int(rate * seconds), MAX_REQUESTS)
    began = time.monotonic()

    async def one(i: int) -> None:
        sample.outcomes.append(await client.request(paths[i % len(paths)]))

    tasks = []
    for i in range(total):
        delay = began + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    sample.seconds = time.monotonic() - began
    client.close()
    return sample


def closed_loop(port: int, paths: list[str], *, concurrency: int, seconds: float) -> Sample:
    """Back-to-back requests from ``concurrency`` users for ``seconds``."""
    return asyncio.run(_closed(port, paths, concurrency, seconds))


def open_loop(
    port: int, paths: list[str], *, rate: float, seconds: float, timeout: float = 10.0
) -> Sample:
    """``rate`` requests a second for ``seconds``, on free keep-alive connections or new ones."""
    return asyncio.run(_open(port, paths, rate, seconds, timeout))
