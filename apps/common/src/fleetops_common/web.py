"""HTTP conventions shared by the services: every non-2xx answer is JSON ``{"error": ...}``.

Errors raised by bottle itself (unknown path, wrong method, oversized body, an unexpected
exception) go through :func:`json_error_handler`; errors the routes detect are raised with
:func:`abort_json`, which can carry extra fields and headers.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import bottle

JSON = "application/json"

# bottle keeps bodies up to this size in memory; larger bodies are refused with 413 before
# any route sees them. Nothing the services accept comes close.
MAX_BODY_BYTES = 64 * 1024

_GENERIC = {
    400: "bad request",
    404: "not found",
    405: "method not allowed",
    413: "request body too large",
    500: "internal server error",
}


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


def json_error_handler(error: bottle.HTTPError) -> str:
    """Render an error raised by bottle as JSON; never leaks a traceback."""
    bottle.response.content_type = JSON
    status = error.status_code
    if status == 404:
        message = f"no such path: {bottle.request.path}"
    elif status == 405:
        message = f"method {bottle.request.method} not allowed on {bottle.request.path}"
    elif status >= 500:
        message = _GENERIC[500]
    else:
        body = error.body if isinstance(error.body, str) and error.body else ""
        message = body or _GENERIC.get(status, "error")
    return _dumps({"error": message})


def abort_json(
    status: int, message: str, /, *, headers: dict[str, str] | None = None, **extra: Any
) -> NoReturn:
    """Stop the route with a JSON error body ``{"error": message, **extra}``."""
    payload: dict[str, Any] = {**extra, "error": message}
    raise bottle.HTTPResponse(
        body=_dumps(payload), status=status, headers={"Content-Type": JSON, **(headers or {})}
    )


def json_response(payload: dict[str, Any], status: int = 200) -> bottle.HTTPResponse:
    """A JSON response with an explicit status (bottle's dict return is always 200)."""
    return bottle.HTTPResponse(body=_dumps(payload), status=status, headers={"Content-Type": JSON})


def read_body(request: bottle.BaseRequest) -> bytes:
    """The raw request body, or abort with 413 when it exceeds ``MAX_BODY_BYTES``."""
    if request.content_length > MAX_BODY_BYTES:
        abort_json(413, _GENERIC[413])
    raw = request.body.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:  # a chunked body announces no length up front
        abort_json(413, _GENERIC[413])
    return raw


def read_json_object(request: bottle.BaseRequest) -> dict[str, Any]:
    """Parse the request body as a JSON object, or abort with 400 saying what is wrong."""
    raw = read_body(request)
    if not raw:
        abort_json(400, "request body must be a JSON object")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        abort_json(400, "request body is not valid JSON")
    except RecursionError:
        # json recurses per nesting level: "[[[[..." well within the size limit gets here.
        abort_json(400, "request body is nested too deeply")
    if not isinstance(data, dict):
        abort_json(400, "request body must be a JSON object")
    return data


def new_app() -> bottle.Bottle:
    """A bottle app that answers every error in JSON."""
    bottle.BaseRequest.MEMFILE_MAX = MAX_BODY_BYTES
    app = bottle.Bottle(catchall=True)
    app.default_error_handler = json_error_handler  # type: ignore[method-assign]
    return app
