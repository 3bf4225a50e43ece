"""The shared HTTP conventions, exercised through a small real bottle app."""

import io

import bottle
import pytest
import webtest

from fleetops_common.metrics import Metrics
from fleetops_common.web import MAX_BODY_BYTES, abort_json, json_response, new_app, read_json_object


@pytest.fixture
def client():
    app = new_app()
    metrics = Metrics("demo", "9.9.9")

    @app.post("/echo")
    def echo():
        return json_response(read_json_object(bottle.request), status=201)

    @app.get("/teapot")
    def teapot():
        abort_json(418, "short and stout", headers={"X-Why": "tea"}, kind="pot", status="hot")

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    @app.get("/bad")
    def bad():
        raise bottle.HTTPError(400)

    @app.get("/metrics")
    def expose():
        return metrics.expose()

    return webtest.TestApp(metrics.wrap(app))


def test_json_body_round_trip(client):
    res = client.post("/echo", '{"a": 1}', content_type="application/json")
    assert res.status_int == 201
    assert res.json == {"a": 1}
    assert res.content_type == "application/json"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "request body must be a JSON object"),
        (b"[1, 2]", "request body must be a JSON object"),
        (b"{nope", "request body is not valid JSON"),
        (b'"\xff\xfe"', "request body is not valid JSON"),
        (b"[" * 60000, "request body is nested too deeply"),
    ],
)
def test_bad_json_bodies_are_400(client, body, message):
    res = client.post("/echo", body, content_type="application/json", status=400)
    assert res.json == {"error": message}


def test_oversized_body_is_413(client):
    res = client.post("/echo", b"x" * (MAX_BODY_BYTES + 1), status=413)
    assert res.json == {"error": "request body too large"}


def test_oversized_chunked_body_is_413():
    # Chunked transfer has no Content-Length: the size is only known while reading.
    payload = b"{" + b" " * MAX_BODY_BYTES + b"}"
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    request = bottle.BaseRequest(
        {
            "REQUEST_METHOD": "POST",
            "HTTP_TRANSFER_ENCODING": "chunked",
            "wsgi.input": io.BytesIO(chunked),
        }
    )
    with pytest.raises(bottle.HTTPResponse) as stopped:
        read_json_object(request)
    assert stopped.value.status_code == 413


def test_abort_json_carries_fields_and_headers(client):
    res = client.get("/teapot", status=418)
    assert res.json == {"kind": "pot", "status": "hot", "error": "short and stout"}
    assert res.headers["X-Why"] == "tea"


def test_bottle_errors_are_json_without_internals(client):
    assert client.get("/nowhere", status=404).json == {"error": "no such path: /nowhere"}
    res = client.delete("/echo", status=405)
    assert res.json == {"error": "method DELETE not allowed on /echo"}
    res = client.get("/boom", status=500, expect_errors=True)
    assert res.json == {"error": "internal server error"}
    assert "secret" not in res.text
    assert client.get("/bad", status=400).json == {"error": "bad request"}


def test_metrics_count_routes_statuses_and_version(client):
    client.post("/echo", "{}", content_type="application/json")
    client.get("/nowhere", status=404)
    client.request("/echo", method="BREW", status=405)
    text = client.get("/metrics").text
    assert 'http_requests_total{method="POST",route="/echo",status="201"} 1.0' in text
    assert 'http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'http_requests_total{method="other",route="unmatched",status="405"} 1.0' in text
    assert 'http_request_duration_seconds_bucket{le="0.05",method="POST",route="/echo"} 1.0' in text
    assert 'app_info{service="demo",version="9.9.9"} 1.0' in text
    assert "process_cpu_seconds_total" in text


def test_every_route_has_its_series_before_its_first_request(client):
    # At 0 from the start, so a new process' first error is an increase, not a new series.
    text = client.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/boom",status="500"} 0.0' in text
    assert 'http_requests_total{method="GET",route="/boom",status="200"} 0.0' in text
    assert 'http_request_duration_seconds_count{method="POST",route="/echo"} 0.0' in text
    client.get("/boom", status=500, expect_errors=True)
    text = client.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/boom",status="500"} 1.0' in text
