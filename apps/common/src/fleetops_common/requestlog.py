"""One structured log line per request, and the request id that ties a request's lines together.

HAProxy gives every public request an id (``X-Request-ID``); info logs it and passes it to data
on every call it makes for that request, and data logs it too, so one id finds the whole path
in the central logs. A request without a usable id (a direct call, a health check) gets a new
one. The id is kept in a context variable for the request's thread: the data client reads it
there without every route having to pass it along.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

HEADER = "X-Request-ID"
_ENVIRON_KEY = "HTTP_X_REQUEST_ID"
# What an id may look like: HAProxy's uuid, ours, or another proxy's; never a log injection.
_VALID = re.compile(r"[A-Za-z0-9._:-]{8,128}")

current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def request_id_from(environ: dict[str, Any]) -> str:
    """The request's id: the one it came with if it is well-formed, else a new one."""
    given = environ.get(_ENVIRON_KEY, "")
    return given if _VALID.fullmatch(given) else uuid.uuid4().hex


def log_line(
    *, service: str, version: str, request_id: str, method: str, path: str, status: int,
    seconds: float,
) -> str:  # fmt: skip
    """The request's log line: one JSON object (the central logs search it by field)."""
    return json.dumps(
        {
            "service": service,
            "version": version,
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": status,
            "latency_ms": round(seconds * 1000, 2),
        },
        separators=(",", ":"),
    )


class RequestLog:
    """WSGI middleware: sets the request id, returns it to the caller, logs the request."""

    def __init__(self, service: str, version: str, logger: logging.Logger | None = None) -> None:
        self.service = service
        self.version = version
        self.log = logger or logging.getLogger(f"fleetops.{service}.requests")

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """Return ``app`` wrapped so that every request has an id and one log line."""

        def middleware(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            started = time.perf_counter()
            request_id = request_id_from(environ)
            token = current.set(request_id)
            status: list[int] = []

            def start_with_id(code: str, headers: list[Any], exc_info: Any = None) -> Any:
                status.append(int(code[:3]))
                return start_response(code, [*headers, (HEADER, request_id)], exc_info)

            try:
                return app(environ, start_with_id)
            finally:
                current.reset(token)
                self.log.info(
                    log_line(
                        service=self.service,
                        version=self.version,
                        request_id=request_id,
                        method=environ.get("REQUEST_METHOD", ""),
                        path=environ.get("PATH_INFO", ""),
                        status=status[-1] if status else 500,
                        seconds=time.perf_counter() - started,
                    )
                )

        return middleware
