"""dataclient.py over real sockets: contract mapping, keep-alive, staleness, retries, timeouts."""

import logging
import threading
import time

import pytest
from info_testkit import SERVICE_TOKEN, Blackhole, DroppingPeer, ScriptedPeer, free_port

from fleetops_common import requestlog
from fleetops_info.config import parse_data_url
from fleetops_info.dataclient import (
    DOWN_HOLD_SECONDS,
    MAX_IDLE_SECONDS,
    DataClient,
    DataUnavailable,
    Identity,
    Quote,
    QuoteRejected,
)


def client_for(url, *, token=SERVICE_TOKEN, connect_timeout=0.5, read_timeout=0.5, **kwargs):
    return DataClient(
        parse_data_url("DATA_URL", url),
        token,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        **kwargs,
    )


def ports(fake_data):
    return [port for _, _, port in fake_data.requests]


# -- the contract ----------------------------------------------------------------------------


def test_health_and_version(data_client, fake_data):
    data_client.health()
    assert data_client.version() == "fake-data-1"
    assert fake_data.paths() == ["GET /api/health", "GET /api/version"]


def test_every_call_carries_the_service_token(fake_data):
    client = client_for(fake_data.url, token="not-the-service-token")
    with pytest.raises(DataUnavailable, match="rejected info's service token"):
        client.version()
    with pytest.raises(DataUnavailable, match="DATA_API_TOKEN"):
        client.random_quote()
    # data answers 401 to bad credentials and to a bad service token alike; /_ready tells.
    assert client.authenticate("admin", "secret") is None
    client.health()  # the one call that needs no token
    client.close()


def test_unhealthy_data_says_why(data_client, fake_data):
    fake_data.db_error = "disk full"
    with pytest.raises(DataUnavailable, match=r"unhealthy \(HTTP 503, db: disk full\)"):
        data_client.health()


@pytest.mark.parametrize(
    ("username", "password", "role"),
    [
        ("admin", "secret", "admin"),
        ("bob", "thisIsNotAPasswordBob", "viewer"),
        ("noadmin", "noPow3r", "editor"),
        ("antonio", "cotorro", "viewer"),
    ],
)
def test_authenticate_seed_users(data_client, username, password, role):
    assert data_client.authenticate(username, password) == Identity(username, role)


@pytest.mark.parametrize(
    ("username", "password"),
    [("admin", "wrong"), ("admin", ""), ("nobody", "secret"), ("x" * 65, "secret")],
)
def test_refused_credentials_are_none(data_client, fake_data, username, password):
    assert data_client.authenticate(username, password) is None
    assert fake_data.paths() == ["POST /api/auth"]


def test_quotes_round_trip(data_client, fake_data):
    assert data_client.random_quote() is None
    stored = data_client.add_quote("Ada Lovelace", "Imagination is the discovering faculty.")
    assert stored == Quote(1, "Ada Lovelace", "Imagination is the discovering faculty.")
    assert fake_data.quotes == [stored.as_dict()]
    assert data_client.random_quote() == stored


def test_quote_rejections_carry_datas_status_and_reason(data_client, fake_data):
    with pytest.raises(QuoteRejected, match="must not be blank") as rejected:
        data_client.add_quote("  ", "text")
    assert rejected.value.status == 422
    fake_data.canned = (400, b'{"error":"author must be a string"}', "application/json")
    with pytest.raises(QuoteRejected, match="author must be a string") as rejected:
        data_client.add_quote("a", "b")
    assert rejected.value.status == 400
    fake_data.canned = (422, b"<html>nope</html>", "text/html")
    with pytest.raises(QuoteRejected, match="data rejected the quote"):
        data_client.add_quote("a", "b")
    assert fake_data.quotes == []


def test_database_down_behind_data(data_client, fake_data):
    fake_data.db_error = "connection lost"
    with pytest.raises(DataUnavailable, match="HTTP 503: database unavailable: connection lost"):
        data_client.random_quote()
    with pytest.raises(DataUnavailable, match="HTTP 503"):
        data_client.authenticate("admin", "secret")
    with pytest.raises(DataUnavailable, match="HTTP 503"):
        data_client.add_quote("a", "b")


HTML = "text/html"
JSON = "application/json"


@pytest.mark.parametrize(
    ("call", "canned", "reason"),
    [
        ("random_quote", (500, b'{"error":"boom"}', JSON), "HTTP 500: boom"),
        ("random_quote", (502, b"<h1>Bad Gateway</h1>", HTML), "HTTP 502: no reason"),
        ("random_quote", (200, b"not json", HTML), "malformed quote"),
        ("random_quote", (200, b"[1, 2]", JSON), "malformed quote"),
        ("random_quote", (200, b"[" * 100_000, JSON), "malformed quote"),
        ("random_quote", (200, b'{"id": true, "author": "a", "text": "b"}', JSON), "malformed"),
        ("random_quote", (200, b'{"id": 1, "author": null, "text": "b"}', JSON), "malformed"),
        ("random_quote", (200, b'{"id": 1, "author": "a", "text": 2}', JSON), "malformed"),
        ("random_quote", (200, b'{"id": "1", "author": "a", "text": "b"}', JSON), "malformed"),
        ("random_quote", (200, b"{" + b" " * 300_000 + b"}", JSON), "larger than expected"),
        ("authenticate", (200, b'{"username": "admin"}', JSON), "without a known username"),
        ("authenticate", (200, b'{"username": "admin", "role": "root"}', JSON), "known"),
        ("authenticate", (200, b'{"username": "", "role": "admin"}', JSON), "known"),
        ("authenticate", (200, b'{"username": "a", "role": ["admin"]}', JSON), "known"),
        ("authenticate", (500, b"", JSON), "HTTP 500"),
        ("add_quote", (200, b"{}", JSON), "malformed quote"),
        ("add_quote", (409, b'{"error":"duplicate"}', JSON), "HTTP 409: duplicate"),
        ("version", (200, b'{"version": 2}', JSON), "without a version"),
        ("version", (404, b"", JSON), "HTTP 404"),
        ("health", (200, b'{"status": "degraded"}', JSON), "HTTP 200, db: \\?"),
        ("health", (200, b"ok", HTML), "unhealthy"),
    ],
)
def test_unusable_answers_are_data_unavailable(data_client, fake_data, call, canned, reason):
    fake_data.canned = canned
    args = {"authenticate": ("admin", "secret"), "add_quote": ("a", "b")}.get(call, ())
    with pytest.raises(DataUnavailable, match=reason):
        getattr(data_client, call)(*args)
    # The connection is still usable (or replaced) afterwards.
    fake_data.canned = None
    data_client.health()


def test_path_prefix_of_data_url_is_used(fake_data):
    client = client_for(fake_data.url + "/prefix/")
    with pytest.raises(DataUnavailable, match="HTTP 404"):
        client.health()
    assert fake_data.paths() == ["GET /prefix/api/health"]
    client.close()


# -- connections -------------------------------------------------------------------------------


def test_one_thread_reuses_one_keep_alive_connection(data_client, fake_data):
    data_client.health()
    data_client.random_quote()
    data_client.authenticate("admin", "secret")
    data_client.add_quote("a", "b")
    assert len(fake_data.requests) == 4
    assert len(set(ports(fake_data))) == 1


def test_each_thread_has_its_own_connection(data_client, fake_data):
    both_connected = threading.Barrier(2)

    def worker():
        data_client.health()
        both_connected.wait(5)  # both threads hold a connection at the same time
        data_client.health()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    seen = ports(fake_data)
    assert len(seen) == 4
    assert len(set(seen)) == 2
    assert all(seen.count(port) == 2 for port in set(seen))


def test_idle_connections_are_retired_before_data_drops_them(fake_data):
    now = [1000.0]
    client = client_for(fake_data.url, clock=lambda: now[0])
    client.health()
    now[0] += MAX_IDLE_SECONDS - 1
    client.health()
    now[0] += MAX_IDLE_SECONDS
    client.health()
    first, second, third = ports(fake_data)
    assert first == second
    assert third != second
    assert MAX_IDLE_SECONDS < 60  # data's waitress closes idle connections at 60 s
    client.close()


def test_connection_close_from_data_is_honoured():
    peer = DroppingPeer(answers=1, announce_close=True)
    client = client_for(peer.url)
    try:
        client.health()
        client.health()  # no failure: the announced close is not mistaken for a live socket
        assert peer.requests == [(1, "GET /api/health HTTP/1.1"), (2, "GET /api/health HTTP/1.1")]
    finally:
        client.close()
        peer.close()


def test_close_drops_pooled_connections(data_client, fake_data):
    data_client.health()
    data_client.close()
    data_client.health()
    assert len(set(ports(fake_data))) == 2


def test_restarted_data_is_reached_on_a_fresh_connection(data_client, fake_data):
    data_client.health()
    fake_data.stop()
    fake_data.start()
    data_client.health()
    # Not even a write fails: the closed pooled socket is noticed before it is used.
    fake_data.stop()
    fake_data.start()
    data_client.add_quote("a", "b")
    assert len(fake_data.quotes) == 1
    assert fake_data.paths() == ["GET /api/health", "GET /api/health", "POST /api/quotes"]
    assert len(set(ports(fake_data))) == 3


@pytest.mark.parametrize(
    ("call", "args", "line"),
    [
        ("random_quote", (), "GET /api/quotes/random HTTP/1.1"),
        ("health", (), "GET /api/health HTTP/1.1"),
        ("authenticate", ("admin", "secret"), "POST /api/auth HTTP/1.1"),
    ],
)
def test_idempotent_calls_are_retried_once_when_a_reused_connection_dies(
    dropping_peer, call, args, line
):
    client = client_for(dropping_peer.url)
    first = client.random_quote()
    result = getattr(client, call)(*args)
    assert result is not None or call == "health"
    assert first == Quote(1, "Ada", "peer answer")
    assert dropping_peer.requests == [
        (1, "GET /api/quotes/random HTTP/1.1"),
        (1, line),  # reached the peer, which hung up without answering
        (2, line),  # the single retry, on a new connection
    ]
    client.close()


def test_adding_a_quote_is_never_retried(dropping_peer, caplog):
    client = client_for(dropping_peer.url)
    client.random_quote()
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(DataUnavailable, match="connection closed without a response"),
    ):
        client.add_quote("a", "b")
    assert dropping_peer.requests == [
        (1, "GET /api/quotes/random HTTP/1.1"),
        (1, "POST /api/quotes HTTP/1.1"),
    ]
    assert dropping_peer.connections == 1
    assert "data POST /api/quotes failed" in caplog.text
    # The next call starts over on a new connection.
    assert client.add_quote("a", "b") == Quote(1, "Ada", "peer answer")
    assert dropping_peer.connections == 2
    client.close()


def test_a_fresh_connection_that_dies_is_not_retried():
    peer = DroppingPeer(answers=0)
    client = client_for(peer.url)
    try:
        with pytest.raises(DataUnavailable, match="closed without a response"):
            client.random_quote()
        assert peer.requests == [(1, "GET /api/quotes/random HTTP/1.1")]
    finally:
        client.close()
        peer.close()


def test_data_down_is_refused_quickly(caplog):
    client = client_for(f"http://127.0.0.1:{free_port()}")
    started = time.perf_counter()
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(DataUnavailable, match="cannot connect to data: connection refused"),
    ):
        client.health()
    assert time.perf_counter() - started < 0.5
    assert "data GET /api/health failed" in caplog.text


def test_a_url_that_refuses_connections_is_skipped_for_the_next(fake_data, caplog):
    down = f"http://127.0.0.1:{free_port()}/via-lb1"
    client = DataClient(
        parse_data_url("DATA_URL", down),
        SERVICE_TOKEN,
        connect_timeout=0.5,
        read_timeout=0.5,
        fallbacks=[parse_data_url("DATA_URL", fake_data.url)],
    )
    try:
        with caplog.at_level(logging.WARNING):
            # A write too: nothing reached the refusing URL, so nothing can be stored twice.
            client.add_quote("a", "b")
        client.random_quote()
        # Each URL's own path prefix: the refusing one's never leaks into the fallback's.
        assert fake_data.paths() == ["POST /api/quotes", "GET /api/quotes/random"]
        assert f"cannot connect to data at {down}: connection refused" in caplog.text
    finally:
        client.close()


def test_a_url_that_refused_is_tried_last_for_a_while(fake_data, caplog):
    down = parse_data_url("DATA_URL", f"http://127.0.0.1:{free_port()}")
    now = [1000.0]
    client = DataClient(
        down,
        SERVICE_TOKEN,
        connect_timeout=0.5,
        read_timeout=0.5,
        fallbacks=[parse_data_url("DATA_URL", fake_data.url)],
        max_idle=0,  # every call opens a new connection
        clock=lambda: now[0],
    )

    def refusals():
        return caplog.text.count("cannot connect to data at")

    try:
        with caplog.at_level(logging.WARNING):
            client.health()
            assert refusals() == 1
            now[0] += DOWN_HOLD_SECONDS - 1
            client.health()  # straight to the fallback
            assert refusals() == 1
            now[0] += 2
            client.health()  # held long enough: the first URL gets its chance again
            assert refusals() == 2
        assert fake_data.paths() == ["GET /api/health"] * 3
    finally:
        client.close()


def test_every_url_refusing_is_data_unavailable_with_each_reason():
    blackhole = Blackhole()
    client = DataClient(
        parse_data_url("DATA_URL", f"http://127.0.0.1:{free_port()}"),
        SERVICE_TOKEN,
        connect_timeout=0.2,
        read_timeout=0.5,
        fallbacks=[parse_data_url("DATA_URL", blackhole.url)],
    )
    try:
        with pytest.raises(
            DataUnavailable, match="cannot connect to data: connection refused; timed out"
        ):
            client.health()
    finally:
        client.close()
        blackhole.close()


def test_slow_answer_times_out_after_the_read_timeout_without_retry(fake_data):
    # A generous connect timeout: the answer must be bounded by the read timeout alone.
    client = client_for(fake_data.url, connect_timeout=2.0, read_timeout=0.2)
    client.health()  # a pooled, reused connection: still no retry on a timeout
    fake_data.delay = 0.8
    started = time.perf_counter()
    with pytest.raises(DataUnavailable, match="request to data failed: timed out"):
        client.random_quote()
    elapsed = time.perf_counter() - started
    assert 0.2 <= elapsed < 0.5
    assert fake_data.paths() == ["GET /api/health", "GET /api/quotes/random"]
    client.close()


def test_connect_timeout_bounds_the_handshake_separately():
    blackhole = Blackhole()
    client = client_for(blackhole.url, connect_timeout=0.2, read_timeout=5)
    started = time.perf_counter()
    try:
        with pytest.raises(DataUnavailable, match="cannot connect to data: timed out"):
            client.health()
        assert time.perf_counter() - started < 1.0
    finally:
        blackhole.close()


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}", "health was cut short"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n{}",
            "request to data failed: IncompleteRead",
        ),
        (  # no length, no chunks: the body ends when the peer hangs up
            b"HTTP/1.1 200 OK\r\n\r\n" + b" " * 300_000,
            "health is larger than expected",
        ),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "request to data failed: BadStatusLine"),
        (
            b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000 + b"\r\n\r\n",
            "request to data failed: LineTooLong",
        ),
    ],
)
def test_broken_http_is_data_unavailable(reply, reason):
    peer = ScriptedPeer(reply)
    client = client_for(peer.url)
    try:
        with pytest.raises(DataUnavailable, match=reason):
            client.health()
    finally:
        client.close()
        peer.close()


def test_https_to_a_plain_http_peer_fails_cleanly():
    peer = ScriptedPeer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    client = client_for(peer.url.replace("http://", "https://"))
    try:
        with pytest.raises(DataUnavailable, match="cannot connect to data: SSLError"):
            client.health()
    finally:
        client.close()
        peer.close()


def test_the_request_id_being_served_goes_to_data(data_client, fake_data):
    data_client.version()  # outside a request: no id to pass on
    token = requestlog.current.set("info-request-0001")
    try:
        data_client.version()
    finally:
        requestlog.current.reset(token)
    assert fake_data.request_ids == ["", "info-request-0001"]
