"""Lame duck: on SIGTERM a service fails its health check and serves on until nobody sends.

A node stopped while a load balancer still sends it requests (a managed instance group's
scale-in, a host shutting down, a ``systemctl stop`` outside a rollout) would refuse or cut them,
and a cut write cannot be retried. So on SIGTERM the health paths answer 503: every HAProxy
marks the node down after its ``fall`` checks, and meanwhile requests are served as before. The
process exits once no request (other than health checks and scrapes) has been running or
arriving for ``quiet_seconds``, or after ``max_seconds`` whatever happens. A rollout has drained
the node in HAProxy before it stops the service, so there the quiet has already begun.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleetops_common.envconfig import ConfigError, env_float

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Scrapes come on their own schedule whether or not the node is still in a backend.
UNWATCHED_PATHS = frozenset({"/metrics"})
_DRAINING_BODY = json.dumps({"error": "draining: this node is shutting down"}).encode()


@dataclass(frozen=True)
class DrainSettings:
    # Longer than the gap between two requests a load balancer sends a busy node, shorter
    # than anyone would wait for a stop.
    quiet_seconds: float = 2.0
    # Longer than HAProxy's checks take to mark the node down (inter 2s x fall 2, plus one
    # interval of phase); systemd's TimeoutStopSec must exceed it.
    max_seconds: float = 20.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DrainSettings:
        """``DRAIN_QUIET_SECONDS`` and ``DRAIN_MAX_SECONDS`` (0 max: stop at once)."""
        quiet = env_float(env, "DRAIN_QUIET_SECONDS", cls.quiet_seconds, minimum=0.1, maximum=60.0)
        limit = env_float(env, "DRAIN_MAX_SECONDS", cls.max_seconds, minimum=0.0, maximum=600.0)
        if limit and limit < quiet:
            raise ConfigError(
                f"DRAIN_MAX_SECONDS ({limit:g}) must be 0 or at least DRAIN_QUIET_SECONDS"
                f" ({quiet:g})"
            )
        return cls(quiet_seconds=quiet, max_seconds=limit)


def drained(
    *, now: float, since: float, last_request: float, in_flight: int, settings: DrainSettings
) -> str | None:
    """Why the drain that began at ``since`` is over (``"quiet"``, ``"limit"``), or None."""
    if now - since >= settings.max_seconds:
        return "limit"
    if in_flight == 0 and now - last_request >= settings.quiet_seconds:
        return "quiet"
    return None


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
                settings=self.settings,
            )

    def wrap(self, app: WSGIApp) -> WSGIApp:
        def middleware(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path in self._unwatched:
                if path in self._health and self.draining:
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
