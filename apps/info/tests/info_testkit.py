"""Test doubles and helpers for info's tests (a uniquely named module, unlike conftest).

``FakeData`` is a test double of a remote HTTP peer: a bottle app that speaks data's contract
(docs/api.md) from memory, served by waitress on a loopback port exactly like the real
service, so info's client is exercised over real sockets, keep-alive and timeouts included.
The real data service is wired to info in the cross-app end-to-end tests.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
import time
from typing import Any

import bottle
from waitress import wasyncore

from fleetops_common.server import ServerSettings, build_server
from fleetops_common.web import abort_json, json_response, new_app, read_json_object
from fleetops_info import tokens

SERVICE_TOKEN = "service-token-for-tests-0123"
JWT_SECRET = "jwt-secret-for-tests-0123456789abcdef"

# The seed's users, stored as data stores them: hex SHA-512 of password + salt.
_SEED_USERS = (
    ("admin", "secret", "F^S%QljSfV", "admin"),
    ("bob", "thisIsNotAPasswordBob", "F^S%QljSfV", "viewer"),
    ("noadmin", "noPow3r", "KjvFUC#K*i", "editor"),
    ("antonio", "cotorro", "ew.qCjqXA/Hw", "viewer"),
)


def password_hash(password: str, salt: str) -> str:
    return hashlib.sha512((password + salt).encode()).hexdigest()


def free_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """A WSGI app served by waitress (the shared build_server) from a thread, on loopback."""

    def __init__(self, app: Any, port: int = 0) -> None:
        settings = ServerSettings(host="127.0.0.1", port=port, threads=4)
        self._server = build_server(app, settings)
        self.port: int = self._server.effective_port
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server = self._server
        server.task_dispatcher.shutdown(timeout=5)
        # The sockets are closed inside waitress's own loop thread, not to race it. The thunk
        # may run before the wake-up byte is written (an earlier byte woke the loop), so it
        # leaves the trigger's pipe open; it is closed here once the loop has exited.
        server.trigger.pull_trigger(lambda: _close_sockets(server))
        self._thread.join(5)
        server.trigger.close()


def _close_sockets(server: Any) -> None:
    for dispatcher in list(server._map.values()):
        if dispatcher is server.trigger:
            dispatcher.del_channel()
        else:
            # The base close: the server's own close() would also close the trigger.
            wasyncore.dispatcher.close(dispatcher)


class FakeData:
    """data's HTTP contract from memory, plus switches to make it slow, sick or down."""

    def __init__(self) -> None:
        self.users = {
            name: (password_hash(password, salt), salt, role)
            for name, password, salt, role in _SEED_USERS
        }
        self.quotes: list[dict[str, Any]] = []
        # (method, path, client port) of every request, to see retries and connection reuse.
        self.requests: list[tuple[str, str, int]] = []
        # The X-Request-ID of every request ("" when it had none).
        self.request_ids: list[str] = []
        self.delay = 0.0
        self.db_error: str | None = None
        # When set, every /api/ call answers (status, body, content type) instead.
        self.canned: tuple[int, bytes, str] | None = None
        self.port = 0
        self.app = self._build()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_quote(self, author: str, text: str) -> dict[str, Any]:
        quote = {"id": len(self.quotes) + 1, "author": author, "text": text}
        self.quotes.append(quote)
        return quote

    def paths(self) -> list[str]:
        return [f"{method} {path}" for method, path, _ in self.requests]

    def start(self) -> None:
        """Listen (on the same port again after stop(), like a restarted service)."""
        self._served = Served(self.app, self.port)
        self.port = self._served.port

    def stop(self) -> None:
        """Close the listener and every open connection, as a stopped process would."""
        self._served.stop()

    def _build(self) -> bottle.Bottle:
        app = new_app()

        @app.hook("before_request")
        def record_and_gate() -> None:
            request = bottle.request
            self.requests.append(
                (request.method, request.path, int(request.environ.get("REMOTE_PORT", 0)))
            )
            self.request_ids.append(request.get_header("X-Request-ID", ""))
            if self.delay:
                time.sleep(self.delay)
            if self.canned is not None:
                status, body, content_type = self.canned
                raise bottle.HTTPResponse(body, status, {"Content-Type": content_type})
            if request.path != "/api/health":
                if request.get_header("Authorization") != f"Bearer {SERVICE_TOKEN}":
                    abort_json(401, "missing or invalid service token")
                if self.db_error is not None:
                    abort_json(503, f"database unavailable: {self.db_error}")

        @app.get("/api/health")
        def health() -> bottle.HTTPResponse:
            if self.db_error is not None:
                return json_response({"status": "unavailable", "db": self.db_error}, 503)
            return json_response({"status": "ok", "db": "ok"})

        @app.get("/api/version")
        def version() -> bottle.HTTPResponse:
            return json_response({"version": "fake-data-1"})

        @app.post("/api/auth")
        def auth() -> bottle.HTTPResponse:
            body = read_json_object(bottle.request)
            username, password = body.get("username"), body.get("password")
            if not isinstance(username, str) or not isinstance(password, str):
                abort_json(400, "username and password must be strings")
            if len(username) > 64:
                abort_json(400, "username is too long")
            user = self.users.get(username)
            if user is None or password_hash(password, user[1]) != user[0]:
                abort_json(401, "wrong username or password")
            return json_response({"username": username, "role": user[2]})

        @app.get("/api/quotes/random")
        def random_quote() -> bottle.HTTPResponse:
            if not self.quotes:
                abort_json(404, "no quotes stored")
            return json_response(random.choice(self.quotes))  # noqa: S311 -- not security

        @app.get("/api/quotes")
        def list_quotes() -> bottle.HTTPResponse:
            try:
                limit = int(bottle.request.query.get("limit", "20"))
                offset = int(bottle.request.query.get("offset", "0"))
            except ValueError:
                abort_json(400, "limit and offset must be integers")
            if not 1 <= limit <= 100 or offset < 0:
                abort_json(400, "limit must be 1..100 and offset >= 0")
            items = self.quotes[offset : offset + limit]
            return json_response({"items": items, "total": len(self.quotes)})

        @app.post("/api/quotes")
        def add_quote() -> bottle.HTTPResponse:
            body = read_json_object(bottle.request)
            author, text = body.get("author"), body.get("text")
            if not isinstance(author, str) or not isinstance(text, str):
                abort_json(400, "author and text must be strings")
            if not author.strip() or not text.strip():
                abort_json(422, "author and text must not be blank")
            if len(author) > 100 or len(text) > 1000:
                abort_json(422, "author must be at most 100 and text at most 1000 characters")
            return json_response(self.add_quote(author, text), 201)

        return app


class DroppingPeer:
    """A raw HTTP/1.1 peer that answers ``answers`` requests per connection, then closes the
    connection when the next request arrives, without answering it.

    That is the race a keep-alive client can lose: the server gives up on the idle connection
    just as the client reuses it. The request did reach the peer, so it is recorded. With
    ``announce_close`` the last answer says ``Connection: close`` first, as a polite server
    would.
    """

    def __init__(self, answers: int, *, announce_close: bool = False) -> None:
        self.answers = answers
        self.announce_close = announce_close
        self.connections = 0
        self.requests: list[tuple[int, str]] = []  # (connection number, request line)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone would not.
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # listener closed
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn, self.connections))
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket, number: int) -> None:
        with conn, conn.makefile("rb") as stream:
            answered = 0
            while True:
                request_line = stream.readline().decode().strip()
                if not request_line:
                    return
                length = 0
                while (line := stream.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                stream.read(length)
                self.requests.append((number, request_line))
                if answered == self.answers:
                    return  # hang up without an answer
                answered += 1
                body = json.dumps(_canned_answer(request_line)).encode()
                close = self.announce_close and answered == self.answers
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + (b"Connection: close\r\n" if close else b"")
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )


def _canned_answer(request_line: str) -> dict[str, Any]:
    if "/api/auth" in request_line:
        return {"username": "admin", "role": "admin"}
    if "/api/health" in request_line:
        return {"status": "ok", "db": "ok"}
    return {"id": 1, "author": "Ada", "text": "peer answer"}


def info_env(data_url: str, **overrides: str) -> dict[str, str]:
    env = {
        "APP_VERSION": "1.2.3-test",
        "JWT_SECRET": JWT_SECRET,
        "DATA_URL": data_url,
        "DATA_API_TOKEN": SERVICE_TOKEN,
        "DATA_CONNECT_TIMEOUT": "0.5",
        "DATA_TIMEOUT": "0.5",
    }
    env.update(overrides)
    return env


class ScriptedPeer:
    """A raw TCP peer that, on every connection, waits for the request, sends ``reply`` (any
    bytes, HTTP or not) and hangs up: for answers no well-behaved server would give."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone would not.
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # listener closed
                return
            with conn:
                conn.recv(65536)
                conn.sendall(self.reply)


class Blackhole:
    """A listener whose accept queue is full, so new connections hang until they time out."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = self._listener.getsockname()[1]
        # With a backlog of 0 the queue holds one connection; this one fills it.
        self._filler = socket.create_connection(("127.0.0.1", self.port))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._filler.close()
        self._listener.close()


def bearer(role: str = "viewer", *, username: str = "tester", **kwargs: Any) -> dict[str, str]:
    """An Authorization header with a valid token for ``role``."""
    token = tokens.issue(JWT_SECRET, username, role, 3600, **kwargs)
    return {"Authorization": f"Bearer {token}"}
