"""``fleetops-info``: start the info service under waitress until SIGTERM."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from fleetops_common.envconfig import ConfigError
from fleetops_common.lameduck import LameDuck
from fleetops_common.server import build_server, configure_logging, serve_forever
from fleetops_info.app import build_app
from fleetops_info.config import Config
from fleetops_info.dataclient import DataClient

_ENVIRONMENT = """\
configuration (environment variables):
  BIND_HOST             address to listen on (127.0.0.1)
  PORT                  port to listen on (5555)
  THREADS               worker threads (8)
  APP_VERSION           version reported by /version (else COMMIT_SHA, else "unknown")
  JWT_SECRET            HS256 signing key, at least 32 characters (required)
  JWT_TTL_SECONDS       token lifetime, 60..86400 (3600)
  DATA_URL              base URL of the data service (http://127.0.0.1:9876)
  DATA_FALLBACK_URLS    comma-separated base URLs tried in order when DATA_URL does not
                        accept a connection (none)
  DATA_API_TOKEN        service token for data, at least 16 characters (required)
  DATA_CONNECT_TIMEOUT  seconds to connect to data (1.0)
  DATA_TIMEOUT          seconds to wait for data's answer (3.0)
  DRAIN_QUIET_SECONDS   on SIGTERM, /_health answers 503 and the service stops once no
                        request came for this long (2.0)...
  DRAIN_MAX_SECONDS     ...or after this long (20.0; 0 stops at once)
"""
# What HAProxy and the instance groups' autohealing check: 503 while draining.
HEALTH_PATHS = ("/_health", "/_ready")


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; 2 for a configuration error, 1 when the port cannot be bound."""
    argparse.ArgumentParser(
        prog="fleetops-info",
        description="The fleetops info service (public API).",
        epilog=_ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    configure_logging()
    try:
        config = Config.from_env(os.environ)
    except ConfigError as exc:
        print(f"fleetops-info: configuration error: {exc}", file=sys.stderr)
        return 2
    data = DataClient.from_config(config)
    lame_duck = LameDuck(config.drain, HEALTH_PATHS)
    try:
        server = build_server(lame_duck.wrap(build_app(config, data)), config.server_settings())
    except OSError as exc:
        print(
            f"fleetops-info: cannot listen on {config.bind_host}:{config.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    try:
        serve_forever(server, "fleetops-info", lame_duck)
    finally:
        server.close()
        data.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
