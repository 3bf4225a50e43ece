"""The request id and the one structured line per request, through a small real bottle app."""

import json
import logging

import pytest
import webtest

from fleetops_common import requestlog
from fleetops_common.requestlog import RequestLog, log_line, request_id_from
from fleetops_common.web import new_app

LOGGER = "fleetops.demo.requests"


@pytest.fixture
def seen():
    """The request id each route saw while it ran."""
    return []


@pytest.fixture
def client(seen):
    app = new_app()

    @app.get("/hello")
    def hello():
        seen.append(requestlog.current.get())
        return {"hello": "world"}

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    return webtest.TestApp(RequestLog("demo", "1.2.3").wrap(app))


def lines(caplog):
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == LOGGER]


def test_a_well_formed_id_is_kept_logged_and_returned(client, seen, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    rid = "0f3c2a9e-5b1d-4c7e-9a2b-6d8e1f0a3b5c"
    res = client.get("/hello?secret=no", headers={"X-Request-ID": rid})
    assert res.headers["X-Request-ID"] == rid
    assert seen == [rid]
    (line,) = lines(caplog)
    latency = line.pop("latency_ms")
    assert line == {
        "service": "demo", "version": "1.2.3", "request_id": rid,
        "method": "GET", "path": "/hello", "status": 200,
    }  # fmt: skip
    assert 0 <= latency < 5000
    # Outside a request there is no id: the data client then sends none.
    assert requestlog.current.get() == ""


@pytest.mark.parametrize("given", ["", "short", "x" * 129, "id with spaces", 'evil"\ninjected'])
def test_a_missing_or_malformed_id_is_replaced(client, seen, caplog, given):
    caplog.set_level(logging.INFO, logger=LOGGER)
    headers = {"X-Request-ID": given} if given else {}
    res = client.get("/hello", headers=headers)
    new = res.headers["X-Request-ID"]
    assert new != given
    assert len(new) == 32
    assert seen == [new]
    assert lines(caplog)[0]["request_id"] == new


def test_each_request_gets_its_own_id(client):
    first = client.get("/hello").headers["X-Request-ID"]
    second = client.get("/hello").headers["X-Request-ID"]
    assert first != second


def test_errors_and_unknown_paths_are_logged_with_their_status(client, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    client.get("/boom", status=500, expect_errors=True)
    client.get("/nowhere", status=404)
    assert [(line["path"], line["status"]) for line in lines(caplog)] == [
        ("/boom", 500),
        ("/nowhere", 404),
    ]


def test_a_crash_below_the_middleware_is_logged_as_500_and_raised(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)

    def broken(environ, start_response):
        raise RuntimeError("before any response")

    app = RequestLog("demo", "1.2.3").wrap(broken)
    with pytest.raises(RuntimeError):
        app({"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, lambda *a: None)
    assert lines(caplog)[0]["status"] == 500
    assert requestlog.current.get() == ""


def test_the_line_is_one_json_object_whatever_the_path():
    line = log_line(service="info", version="v", request_id="r" * 8, method="GET",
                    path='/a"b\nc', status=404, seconds=0.0123456)  # fmt: skip
    assert "\n" not in line
    assert json.loads(line)["path"] == '/a"b\nc'
    assert json.loads(line)["latency_ms"] == 12.35


def test_request_id_from_environ():
    assert request_id_from({"HTTP_X_REQUEST_ID": "abc:123_456.7-8"}) == "abc:123_456.7-8"
    assert request_id_from({}) != request_id_from({})
