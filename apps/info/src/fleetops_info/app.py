"""info's HTTP API: a thin route table that parses input, calls pure logic, shapes answers.

Every non-2xx answer is JSON ``{"error": ...}`` (fleetops_common.web). Input is parsed by
``inputs``, which turns every defect into a 4xx; logic lives in the pure modules.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import bottle

from fleetops_common.metrics import Metrics, WSGIApp
from fleetops_common.requestlog import RequestLog
from fleetops_common.web import abort_json, json_response, new_app, read_json_object
from fleetops_info import cidr, inputs, tokens
from fleetops_info.config import Config
from fleetops_info.dataclient import DataClient, DataUnavailable, QuoteRejected
from fleetops_info.negotiate import prefers_html
from fleetops_info.page import render_page

TEXT = "text/plain; charset=utf-8"
EDITORS = frozenset({"editor", "admin"})
_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

Response = bottle.HTTPResponse
P = ParamSpec("P")
RETRY_SOON = {"Retry-After": "1"}
R = TypeVar("R")


def _needs_data(route: Callable[P, R]) -> Callable[P, R]:
    """Answer 503 when the route's call to data fails, whatever the reason (logged there)."""

    @functools.wraps(route)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return route(*args, **kwargs)
        except DataUnavailable:
            # Every cause is passing (data busy hashing logins, a node restarting, the database
            # away): tell clients when to come back rather than let them hammer.
            abort_json(503, "data service unavailable, try again later", headers=RETRY_SOON)

    return wrapper


def _text(body: str) -> str:
    # bottle labels str bodies text/html by default; these answers are plain text.
    bottle.response.content_type = TEXT
    return body


def _convert(function: str, convert: Callable[[str], str | None], expected: str) -> Response:
    value = inputs.query_fields("value").get("value")
    if value is None:
        abort_json(400, "missing query parameter: value")
    output = convert(value)
    if output is None:
        abort_json(
            422,
            f"invalid value, expected {expected}",
            function=function,
            input=value,
            output="Invalid",
        )
    return json_response({"function": function, "input": value, "output": output})


def build_app(config: Config, data: DataClient) -> WSGIApp:
    """The info WSGI app, counted and timed by its Prometheus metrics."""
    app = new_app()
    metrics = Metrics("info", config.version)

    @app.get("/")
    def home() -> str:
        # The answer depends on Accept, so caches must keep one copy per Accept value.
        bottle.response.set_header("Vary", "Accept")
        if not prefers_html(inputs.header("HTTP_ACCEPT")):
            return _text("OK")
        try:
            quote, available = data.random_quote(), True
        except DataUnavailable:
            quote, available = None, False
        bottle.response.content_type = "text/html; charset=utf-8"
        bottle.response.set_header("Content-Security-Policy", _PAGE_CSP)
        bottle.response.set_header("X-Content-Type-Options", "nosniff")
        return render_page(config.version, quote, data_available=available)

    @app.get("/version")
    def version() -> str:
        return _text(config.version)

    @app.get("/_health")
    def health() -> str:
        return _text("HEALTHY")

    @app.get("/_ready")
    def ready() -> Response:
        try:
            data.health()
            data_version = data.version()
        except DataUnavailable as exc:
            abort_json(503, f"dependency data is not ready: {exc}", dependency="data")
        return json_response(
            {
                "status": "ready",
                "version": config.version,
                "dependencies": {"data": {"status": "ok", "version": data_version}},
            }
        )

    @app.post("/login")
    @_needs_data
    def login() -> Response:
        if inputs.require_media_type(inputs.FORM_TYPE, inputs.JSON_TYPE) == inputs.JSON_TYPE:
            fields = read_json_object(bottle.request)
        else:
            fields = inputs.form_fields("username", "password")
        username, password = inputs.required_text(fields, "username", "password")
        identity = data.authenticate(username, password)
        if identity is None:
            abort_json(403, "wrong username or password")
        token = tokens.issue(
            config.jwt_secret, identity.username, identity.role, config.jwt_ttl_seconds
        )
        response = json_response({"data": token})
        response.set_header("Cache-Control", "no-store")  # a credential
        return response

    @app.get("/cidr-to-mask")
    def cidr_to_mask() -> Response:
        inputs.authorize(config.jwt_secret, tokens.ROLES, "convert")
        return _convert("cidrToMask", cidr.cidr_to_mask, "a prefix length from 1 to 32")

    @app.get("/mask-to-cidr")
    def mask_to_cidr() -> Response:
        inputs.authorize(config.jwt_secret, tokens.ROLES, "convert")
        return _convert(
            "maskToCidr",
            cidr.mask_to_cidr,
            "a netmask of contiguous one bits, from 128.0.0.0 to 255.255.255.255",
        )

    @app.get("/quote")
    @_needs_data
    def quote() -> Response:
        stored = data.random_quote()
        if stored is None:
            abort_json(404, "no quotes stored yet")
        return json_response(stored.as_dict())

    @app.post("/quotes")
    @_needs_data
    def add_quote() -> Response:
        inputs.authorize(config.jwt_secret, EDITORS, "add quotes")
        inputs.require_media_type(inputs.JSON_TYPE)
        author, text = inputs.required_text(read_json_object(bottle.request), "author", "text")
        try:
            stored = data.add_quote(author, text)
        except QuoteRejected as exc:
            abort_json(exc.status, exc.message)
        return json_response(stored.as_dict(), status=201)

    @app.get("/metrics")
    def metrics_route() -> bytes:
        return metrics.expose()

    # Outermost: the request's id is set before anything runs, and its line has the final status.
    return RequestLog("info", config.version).wrap(metrics.wrap(app))
