"""Run a WSGI app under waitress with settings from the service's config."""

from __future__ import annotations

import logging
import signal
import sys
from dataclasses import dataclass
from types import FrameType
from typing import Any

from waitress.server import create_server

from fleetops_common.lameduck import LameDuck

# Bodies larger than this are refused by waitress before the app reads them.
MAX_REQUEST_BODY = 1024 * 1024
_DRAIN_TICK = 0.2


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


def serve_forever(server: Any, name: str, lame_duck: LameDuck | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then let in-flight requests finish and return.

    With a ``lame_duck``, SIGTERM first drains (see lameduck.py): a timer looks every
    ``_DRAIN_TICK`` seconds whether the drain is over. SIGINT, or a second SIGTERM, stops at once.
    waitress turns a SystemExit raised inside its loop into an orderly shutdown of its
    worker threads, so the handlers only have to raise it.
    """
    log = logging.getLogger(name)

    def stop(signum: int, _frame: FrameType | None) -> None:
        if lame_duck is None or signum != signal.SIGTERM or lame_duck.draining:
            log.info("received signal %d, shutting down", signum)
            raise SystemExit(0)
        settings = lame_duck.settings
        log.info(
            "received signal %d, draining: health answers 503 until each checker had %d"
            " and no request came for %gs (at most %gs)",
            signum,
            settings.check_fall,
            settings.quiet_seconds,
            settings.max_seconds,
        )
        lame_duck.begin()
        duck = lame_duck

        def look(_signum: int, _frame: FrameType | None) -> None:
            reason = duck.over()
            if reason is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                log.info("drained (%s), shutting down", reason)
                raise SystemExit(0)

        signal.signal(signal.SIGALRM, look)
        signal.setitimer(signal.ITIMER_REAL, _DRAIN_TICK, _DRAIN_TICK)

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
