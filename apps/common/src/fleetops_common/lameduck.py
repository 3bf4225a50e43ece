"""Lame duck: on SIGTERM a service fails its health check and serves on until nobody sends.

A node stopped while a load balancer still sends it requests (a managed instance group's
scale-in, a host shutting down, a ``systemctl stop`` outside a rollout) would refuse or cut them,
and a cut write cannot be retried. So on SIGTERM the health paths answer 503: every HAProxy
marks the node down after its ``fall`` checks, and meanwhile requests are served as before. The
process exits once every health checker it has heard from lately has been answered 503 ``fall``
times (so has marked it down), and no request (other than health checks and scrapes) has been
running or arriving for ``quiet_seconds``; or after ``max_seconds`` whatever happens. The quiet
alone is not enough: a node that light traffic (or a stall of its callers) leaves idle for the
quiet time would exit before its balancer noticed, and be marked down on refused connections.
A rollout has put the node in maintenance on every HAProxy before it stops the service: there
the checks have stopped, the quiet has already begun, and it exits as soon as its checkers'
last probes are older than ``check_gap_seconds``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleetops_common.envconfig import ConfigError, env_float, env_int

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Scrapes come on their own schedule whether or not the node is still in a backend.
UNWATCHED_PATHS = frozenset({"/metrics"})
# Health paths are public through the balancer: whoever calls them is remembered only for the
# gap, and only this many at once (the oldest go first).
_MAX_CHECKERS = 64
_DRAINING_BODY = json.dumps({"error": "draining: this node is shutting down"}).encode()


@dataclass(frozen=True)
class DrainSettings:
    # Longer than the gap between two requests a load balancer sends a busy node, shorter
    # than anyone would wait for a stop.
    quiet_seconds: float = 2.0
    # Longer than HAProxy's checks take to mark the node down (inter 2s x fall 2, plus one
    # interval of phase); systemd's TimeoutStopSec must exceed it.
    max_seconds: float = 20.0
    # HAProxy's `fall`: a checker that got this many 503s in a row has marked the node down.
    check_fall: int = 2
    # A checker silent this long has stopped checking (the node is in maintenance there, or the
    # checker is gone): more than two of HAProxy's check intervals (inter 2s).
    check_gap_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DrainSettings:
        """``DRAIN_QUIET_SECONDS``, ``DRAIN_MAX_SECONDS`` (0: stop at once), ``DRAIN_CHECK_*``."""
        quiet = env_float(env, "DRAIN_QUIET_SECONDS", cls.quiet_seconds, minimum=0.1, maximum=60.0)
        limit = env_float(env, "DRAIN_MAX_SECONDS", cls.max_seconds, minimum=0.0, maximum=600.0)
        fall = env_int(env, "DRAIN_CHECK_FALL", cls.check_fall, minimum=1, maximum=100)
        gap = env_float(
            env, "DRAIN_CHECK_GAP_SECONDS", cls.check_gap_seconds, minimum=0.1, maximum=600.0
        )
        if limit and limit < quiet:
            raise ConfigError(
                f"DRAIN_MAX_SECONDS ({limit:g}) must be 0 or at least DRAIN_QUIET_SECONDS"
                f" ({quiet:g})"
            )
        return cls(quiet_seconds=quiet, max_seconds=limit, check_fall=fall, check_gap_seconds=gap)


@dataclass
class Checker:
    """What one health checker (an address and user agent) has seen of this node."""

    last_seen: float
    failed: int = 0  # 503s answered in a row since the drain began


def drained(
    *,
    now: float,
    since: float,
    last_request: float,
    in_flight: int,
    checkers: Collection[Checker] = (),
    settings: DrainSettings,
) -> str | None:
    """Why the drain that began at ``since`` is over (``"quiet"``, ``"limit"``), or None."""
    if now - since >= settings.max_seconds:
        return "limit"
    if in_flight or now - last_request < settings.quiet_seconds:
        return None
    if any(
        c.failed < settings.check_fall and now - c.last_seen < settings.check_gap_seconds
        for c in checkers
    ):
        return None  # a balancer still checking has not marked the node down yet
    return "quiet"


class LameDuck:
    """Counts the requests a node serves and, once draining, fails its health paths."""

    def __init__(
        self,
        settings: DrainSettings,
        health_paths: Iterable[str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._unwatched = frozenset(health_paths) | UNWATCHED_PATHS
        self._health = frozenset(health_paths)
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight = 0
        self._last_request = float("-inf")
        self._since: float | None = None
        self._checkers: dict[tuple[str, str], Checker] = {}

    @property
    def draining(self) -> bool:
        return self._since is not None

    def begin(self) -> None:
        """Start draining (again: no effect)."""
        with self._lock:
            if self._since is None:
                self._since = self._clock()

    def over(self) -> str | None:
        """Why the drain is over, or None while it goes on (and before it began)."""
        with self._lock:
            if self._since is None:
                return None
            return drained(
                now=self._clock(),
                since=self._since,
                last_request=self._last_request,
                in_flight=self._in_flight,
                checkers=list(self._checkers.values()),
                settings=self.settings,
            )

    def _checked(self, environ: Mapping[str, Any]) -> bool:
        """Remember a health check (who, when, 503s in a row); whether it gets a 503."""
        key = (str(environ.get("REMOTE_ADDR", "")), str(environ.get("HTTP_USER_AGENT", "")))
        with self._lock:
            now = self._clock()
            checker = self._checkers.pop(key, None) or Checker(last_seen=now)
            checker.last_seen = now
            if self._since is not None:
                checker.failed += 1
            # The dict runs from the least to the most recently seen checker.
            self._checkers[key] = checker
            for oldest in list(self._checkers):
                seen = self._checkers[oldest].last_seen
                if (
                    len(self._checkers) <= _MAX_CHECKERS
                    and now - seen < self.settings.check_gap_seconds
                ):
                    break
                del self._checkers[oldest]
            return self._since is not None

    def wrap(self, app: WSGIApp) -> WSGIApp:
        def middleware(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path in self._unwatched:
                if path in self._health and self._checked(environ):
                    start_response(
                        "503 Service Unavailable",
                        [
                            ("Content-Type", "application/json"),
                            ("Content-Length", str(len(_DRAINING_BODY))),
                        ],
                    )
                    return [_DRAINING_BODY]
                return app(environ, start_response)
            with self._lock:
                self._in_flight += 1
            try:
                # bottle's bodies are lists: the work is done when the app returns.
                return app(environ, start_response)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._last_request = self._clock()

        return middleware
