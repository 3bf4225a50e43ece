"""The data service's HTTP API (docs/api.md, section "data"): a thin route table.

Every route except ``/api/health`` and ``/metrics`` requires the service token that only
info holds; a database outage turns into 503 on every route that needs the database.
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import bottle

from fleetops_common.metrics import Metrics, WSGIApp
from fleetops_common.requestlog import RequestLog
from fleetops_common.web import abort_json, json_response, new_app, read_json_object
from fleetops_data import validation
from fleetops_data.config import Config
from fleetops_data.db import DatabaseUnavailable
from fleetops_data.kdfgate import KdfBusy, KdfGate
from fleetops_data.store import Store

log = logging.getLogger("fleetops-data")

Route = Callable[..., Any]
RETRY_SOON = {"Retry-After": "1"}
T = TypeVar("T")


def _valid(check: Callable[..., T], *args: Any, status: int) -> T:
    try:
        return check(*args)
    except validation.ValidationError as exc:
        abort_json(status, str(exc))


def build_app(config: Config, store: Store, kdf: KdfGate | None = None) -> WSGIApp:
    """The WSGI app; ``kdf`` bounds the logins hashed at once (by default from ``config``)."""
    app = new_app()
    metrics = Metrics("data", config.version)
    token = config.api_token.encode()
    if kdf is None:
        kdf = KdfGate(config.kdf_workers, config.kdf_waiting, config.kdf_wait_seconds)

    def require_token(callback: Route) -> Route:
        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # Straight from the WSGI environ (latin-1, per PEP 3333): bottle's get_header
            # decodes as UTF-8 and would turn a header of arbitrary bytes into a 500.
            header = bottle.request.environ.get("HTTP_AUTHORIZATION", "")
            scheme, _, presented = header.encode("latin-1").partition(b" ")
            # compare_digest: the time taken must not reveal how much of a guess was right.
            if scheme.lower() != b"bearer" or not hmac.compare_digest(presented.strip(), token):
                abort_json(
                    401,
                    "a valid service token is required",
                    headers={"WWW-Authenticate": 'Bearer realm="fleetops-data"'},
                )
            return callback(*args, **kwargs)

        return wrapper

    def database_errors_as_503(callback: Route) -> Route:
        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except DatabaseUnavailable as exc:
                log.warning("database unavailable: %s", exc.reason)
                abort_json(503, "database unavailable")

        return wrapper

    # Installed on the app, so a new route is protected unless it opts out explicitly.
    app.install(database_errors_as_503)
    app.install(require_token)

    @app.get("/api/health", skip=[require_token])
    def health() -> Any:
        try:
            store.health()
        except DatabaseUnavailable as exc:
            # Not abort_json: its own `status` parameter would swallow the "status" field.
            payload = {"status": "unavailable", "db": exc.reason, "error": "database unavailable"}
            return json_response(payload, status=503)
        return json_response({"status": "ok", "db": "ok"})

    @app.get("/api/version")
    def version() -> Any:
        return json_response({"version": config.version})

    @app.post("/api/auth")
    def auth() -> Any:
        body = read_json_object(bottle.request)
        username, password = _valid(validation.credentials, body, status=400)
        try:
            with kdf.slot():
                user = store.authenticate(username, password)
        except KdfBusy:
            # Shed at once rather than queue: a login retried in a second costs less than
            # reads that wait behind a pile of password hashes.
            abort_json(503, "too many logins at once, try again shortly", headers=RETRY_SOON)
        if user is None:
            abort_json(401, "wrong username or password")
        return json_response({"username": user[0], "role": user[1]})

    @app.get("/api/quotes/random")
    def random_quote() -> Any:
        quote = store.random_quote()
        if quote is None:
            abort_json(404, "no quotes stored")
        return json_response(dict(quote))

    @app.get("/api/quotes")
    def list_quotes() -> Any:
        query = bottle.request.query
        limit, offset = _valid(
            validation.paging, query.get("limit"), query.get("offset"), status=400
        )
        items, total = store.list_quotes(limit, offset)
        return json_response({"items": items, "total": total})

    @app.post("/api/quotes")
    def add_quote() -> Any:
        body = read_json_object(bottle.request)
        author, text = _valid(validation.new_quote, body, status=422)
        return json_response(dict(store.add_quote(author, text)), status=201)

    @app.get("/metrics", skip=[require_token])
    def prometheus() -> Any:
        return metrics.expose()

    # Outermost: the request's id (info's, passed on) is set first, its line has the final status.
    return RequestLog("data", config.version).wrap(metrics.wrap(app))
