"""Prometheus metrics for a WSGI app: request counts and latency per route and status.

Labels use the matched route *rule* (``/cidr-to-mask``), never the raw path, so a scanner
hitting random URLs cannot blow up the series count: unmatched paths share one label.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import bottle
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Buckets around the services' latency goals (info p99 < 50 ms, data p99 < 200 ms).
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Metrics:
    """A registry of one service's metrics plus the WSGI middleware that feeds it."""

    def __init__(self, service: str, version: str) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._requests = Counter(
            "http_requests_total",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "http_request_duration_seconds",
            "Time to produce the response",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        info = Gauge(
            "app_info",
            "The running service and version (always 1)",
            ["service", "version"],
            registry=self.registry,
        )
        info.labels(service=service, version=version).set(1)

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """Return ``app`` wrapped so that every request is counted and timed. A bottle app's
        routes get their series at once (``initialize``)."""
        if isinstance(app, bottle.Bottle):
            self.initialize(app)

        def middleware(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            started = time.perf_counter()
            status: list[str] = []

            def recording_start_response(
                code: str, headers: list[Any], exc_info: Any = None
            ) -> Any:
                status.append(code[:3])
                return start_response(code, headers, exc_info)

            body = app(environ, recording_start_response)
            route = environ.get("bottle.route")
            rule = route.rule if route is not None else "unmatched"
            method = environ.get("REQUEST_METHOD", "")
            method = method if method in _METHODS else "other"
            self._latency.labels(method=method, route=rule).observe(time.perf_counter() - started)
            self._requests.labels(
                method=method, route=rule, status=status[-1] if status else "000"
            ).inc()
            return body

        return middleware

    def initialize(self, app: bottle.Bottle) -> None:
        """Every route's request series (answered 200, failed 500) and histogram at 0 from the
        process' start. A series born with its first error is seen by ``increase()`` and
        ``rate()`` only from its second scrape: a new release's first errors would be missing
        from a canary's bake window and an SLO's short burn-rate window."""
        for route in app.routes:
            method = route.method if route.method in _METHODS else "other"
            self._latency.labels(method=method, route=route.rule)
            for status in ("200", "500"):
                self._requests.labels(method=method, route=route.rule, status=status)

    def expose(self) -> bytes:
        """The Prometheus text exposition of every metric, for the ``/metrics`` route."""
        bottle.response.content_type = CONTENT_TYPE_LATEST
        return generate_latest(self.registry)
