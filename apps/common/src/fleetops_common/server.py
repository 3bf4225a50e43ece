"""Run a WSGI app under waitress with settings from the service's config."""

from __future__ import annotations

import logging
import signal
import sys
from dataclasses import dataclass
from types import FrameType
from typing import Any

from waitress.server import create_server

# Bodies larger than this are refused by waitress before the app reads them.
MAX_REQUEST_BODY = 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    threads: int
    connection_limit: int = 1000
    # Idle keep-alive connections are closed after this many seconds; clients that pool
    # connections (info's data client) must retire theirs sooner.
    channel_timeout: int = 60


def build_server(app: Any, settings: ServerSettings) -> Any:
    """Create (bind) the waitress server without serving yet."""
    return create_server(
        app,
        host=settings.host,
        port=settings.port,
        threads=settings.threads,
        connection_limit=settings.connection_limit,
        channel_timeout=settings.channel_timeout,
        max_request_body_size=MAX_REQUEST_BODY,
        ident="fleetops",
        clear_untrusted_proxy_headers=True,
    )


def serve_forever(server: Any, name: str) -> None:
    """Serve until SIGTERM/SIGINT, then let in-flight requests finish and return.

    waitress turns a SystemExit raised inside its loop into an orderly shutdown of its
    worker threads, so the handler only has to raise it.
    """
    log = logging.getLogger(name)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received signal %d, shutting down", signum)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("serving on http://%s:%s", server.effective_host, server.effective_port)
    server.run()
    log.info("stopped")


def configure_logging() -> None:
    """Log to stderr (journald under systemd) with a level and logger name per line."""
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
