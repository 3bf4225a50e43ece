"""The data service as info sees it: a few typed calls over pooled keep-alive HTTP.

Each waitress worker thread keeps one connection to data (``threading.local``), so a request
costs no TCP handshake and no lock. Pooled connections go stale in two ways, both handled:

- data's waitress closes connections idle for 60 s, so ours are retired after 30 s, and a
  socket the peer has already closed (data restarted) is detected before it is reused;
- the peer can still close in the instant between that check and our request. Only calls that
  are safe to repeat (reads, and ``POST /api/auth``, which changes nothing) are then retried,
  once, on a fresh connection. ``POST /api/quotes`` is never retried: data may have stored
  the quote already, and a retry would store it twice.

A new connection goes to the first URL that accepts one: ``data_url``, then each fallback (the
region's other lbs). Nothing has been sent when a connect fails, so this is safe for every
call, writes included; a connection that was accepted is never abandoned for another URL. A
URL that refused is tried last for ``DOWN_HOLD_SECONDS``, so that while an lb is down the
threads do not each wait out its connect timeout again.
"""

from __future__ import annotations

import http.client
import json
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fleetops_common import requestlog
from fleetops_info.config import Config, DataURL
from fleetops_info.tokens import ROLES

log = logging.getLogger(__name__)

# Retire pooled connections well before data's waitress drops them (channel_timeout 60 s).
MAX_IDLE_SECONDS = 30.0
# How long a URL that refused a connection goes to the back of the line.
DOWN_HOLD_SECONDS = 10.0
# data's answers are small JSON documents; anything bigger is a fault, not a quote.
MAX_RESPONSE_BYTES = 256 * 1024

# What a pooled connection that the peer has closed raises on reuse
# (http.client.RemoteDisconnected is a ConnectionResetError).
_STALE = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)
_FAILURES = (OSError, http.client.HTTPException)


class DataUnavailable(Exception):  # noqa: N818 -- names the condition
    """data could not give a usable answer; the message is for logs and ``/_ready``."""


class QuoteRejected(Exception):  # noqa: N818 -- names the condition
    """data refused a quote as invalid (400/422); the message is data's, for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Identity:
    username: str
    role: str


@dataclass(frozen=True)
class Quote:
    id: int
    author: str
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "author": self.author, "text": self.text}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "connection closed without a response"
    return f"{type(exc).__name__}: {exc}"


def _json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or {} so callers' field checks report it as malformed."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _error_message(doc: dict[str, Any], default: str) -> str:
    message = doc.get("error")
    return message if isinstance(message, str) and message else default


def _quote(doc: dict[str, Any]) -> Quote:
    quote_id, author, text = doc.get("id"), doc.get("author"), doc.get("text")
    if (
        not isinstance(quote_id, int)
        or isinstance(quote_id, bool)
        or not isinstance(author, str)
        or not isinstance(text, str)
    ):
        raise DataUnavailable("data answered with a malformed quote")
    return Quote(id=quote_id, author=author, text=text)


def _is_dropped(sock: socket.socket) -> bool:
    """True when an idle keep-alive socket is readable: the peer closed it (or sent junk)."""
    # poll, not select: select fails on descriptors above 1023, and a busy info holds many.
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class DataClient:
    def __init__(
        self,
        url: DataURL,
        token: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        fallbacks: Sequence[DataURL] = (),
        max_idle: float = MAX_IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._urls = (url, *fallbacks)
        # URL -> until when (clock) it goes last: it refused a connection.
        self._down_until: dict[DataURL, float] = {}
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_idle = max_idle
        self._clock = clock
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": "fleetops-info",
        }
        self._local = threading.local()
        # Every open connection, so that close() can reach those of other threads too.
        self._open: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Config) -> DataClient:
        return cls(
            config.data_url,
            config.data_api_token,
            connect_timeout=config.data_connect_timeout,
            read_timeout=config.data_timeout,
            fallbacks=config.data_fallback_urls,
        )

    # -- the calls info makes ------------------------------------------------------------

    def health(self) -> None:
        """Return when data reports itself healthy, else raise DataUnavailable saying why."""
        status, doc = self._call("GET", "/api/health")
        if status == 200 and doc.get("status") == "ok":
            return
        raise DataUnavailable(f"data is unhealthy (HTTP {status}, db: {doc.get('db', '?')})")

    def version(self) -> str:
        """data's version; also proves that data accepts info's service token."""
        status, doc = self._call("GET", "/api/version")
        version = doc.get("version")
        if status != 200:
            raise self._unexpected(status, doc)
        if not isinstance(version, str):
            raise DataUnavailable("data answered /api/version without a version")
        return version

    def authenticate(self, username: str, password: str) -> Identity | None:
        """The user's identity, or None when data does not accept the credentials."""
        status, doc = self._call(
            "POST", "/api/auth", {"username": username, "password": password}, idempotent=True
        )
        # 400 means data found the credentials malformed (too long, say): they cannot match.
        if status in (400, 401):
            return None
        if status != 200:
            raise self._unexpected(status, doc)
        name, role = doc.get("username"), doc.get("role")
        if not isinstance(name, str) or not name or not isinstance(role, str) or role not in ROLES:
            raise DataUnavailable("data answered /api/auth without a known username and role")
        return Identity(username=name, role=role)

    def random_quote(self) -> Quote | None:
        """A random stored quote, or None when data holds none yet."""
        status, doc = self._call("GET", "/api/quotes/random")
        if status == 404:
            return None
        if status != 200:
            raise self._unexpected(status, doc)
        return _quote(doc)

    def add_quote(self, author: str, text: str) -> Quote:
        """Store a quote; QuoteRejected carries data's reason when it refuses it."""
        status, doc = self._call(
            "POST", "/api/quotes", {"author": author, "text": text}, idempotent=False
        )
        if status in (400, 422):
            raise QuoteRejected(status, _error_message(doc, "data rejected the quote"))
        if status not in (200, 201):
            raise self._unexpected(status, doc)
        return _quote(doc)

    def close(self) -> None:
        """Close every pooled connection (of all threads)."""
        with self._lock:
            connections, self._open = self._open, set()
        for conn in connections:
            conn.close()

    # -- transport -----------------------------------------------------------------------

    @staticmethod
    def _unexpected(status: int, doc: dict[str, Any]) -> DataUnavailable:
        if status == 401:
            return DataUnavailable("data rejected info's service token (check DATA_API_TOKEN)")
        return DataUnavailable(f"data answered HTTP {status}: {_error_message(doc, 'no reason')}")

    def _call(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        idempotent: bool = True,
    ) -> tuple[int, dict[str, Any]]:
        body = None if payload is None else json.dumps(payload).encode()
        started = time.perf_counter()
        try:
            status, raw = self._exchange(method, path, body, idempotent=idempotent)
        except DataUnavailable as exc:
            log.warning("data %s %s failed (%s): %s", method, path, self._where(), exc)
            raise
        except _FAILURES as exc:
            reason = _describe(exc)
            elapsed = time.perf_counter() - started
            log.warning(
                "data %s %s failed after %.3f s (%s): %s",
                method, path, elapsed, self._where(), reason,
            )  # fmt: skip
            raise DataUnavailable(f"request to data failed: {reason}") from exc
        return status, _json_object(raw)

    def _exchange(
        self, method: str, path: str, body: bytes | None, *, idempotent: bool
    ) -> tuple[int, bytes]:
        conn, reused = self._connection()
        try:
            return self._send(conn, method, path, body)
        except _STALE:
            if not (reused and idempotent):
                raise
            log.info("pooled connection to data was closed by the peer; retrying %s once", path)
        conn, _ = self._connection()  # the stale one is gone, so this one is fresh
        return self._send(conn, method, path, body)

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it is a reused one."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            # sock is None once http.client has closed it (the peer sent Connection: close).
            idle = self._clock() - self._local.last_used
            if conn.sock is not None and idle < self._max_idle and not _is_dropped(conn.sock):
                return conn, True
            self._discard(conn)
        conn, url = self._connect()
        # The connect timeout bounds the handshake only; answers get the (longer) read timeout.
        conn.sock.settimeout(self._read_timeout)
        with self._lock:
            self._open.add(conn)
        self._local.conn, self._local.url = conn, url
        self._local.last_used = self._clock()
        return conn, False

    def _connect(self) -> tuple[http.client.HTTPConnection, DataURL]:
        """A new connection to the first URL that accepts one."""
        reasons = []
        now = self._clock()
        with self._lock:
            down = {url for url, until in self._down_until.items() if until > now}
        # Stable: the configured order, with the URLs that refused lately at the end.
        for url in sorted(self._urls, key=lambda u: u in down):
            https = url.scheme == "https"
            connection_class = http.client.HTTPSConnection if https else http.client.HTTPConnection
            conn = connection_class(url.host, url.port, timeout=self._connect_timeout)
            try:
                conn.connect()
            except _FAILURES as exc:
                conn.close()
                reasons.append(_describe(exc))
                log.warning("cannot connect to data at %s: %s", url, reasons[-1])
                with self._lock:
                    self._down_until[url] = self._clock() + DOWN_HOLD_SECONDS
                continue
            with self._lock:
                self._down_until.pop(url, None)
            return conn, url
        raise DataUnavailable(f"cannot connect to data: {'; '.join(reasons)}")

    def _where(self) -> DataURL:
        """The URL this thread's requests go to (the first one before any connection)."""
        return getattr(self._local, "url", None) or self._urls[0]

    def _send(
        self, conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None
    ) -> tuple[int, bytes]:
        headers = dict(self._headers)
        # The id of the request info is serving: data logs it too (fleetops_common.requestlog).
        request_id = requestlog.current.get()
        if request_id:
            headers[requestlog.HEADER] = request_id
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, self._where().path + path, body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read(MAX_RESPONSE_BYTES + 1)
            if len(raw) > MAX_RESPONSE_BYTES:
                raise DataUnavailable(f"data's answer to {path} is larger than expected")
            # read(n) returns short, without raising, when the peer hangs up mid-body; the
            # bytes it still owes of its Content-Length tell.
            if response.length:
                raise DataUnavailable(f"data's answer to {path} was cut short")
        except BaseException:
            # A half-used connection cannot carry another request.
            self._discard(conn)
            raise
        self._local.last_used = self._clock()
        return response.status, raw

    def _discard(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock:
            self._open.discard(conn)
        # Only the calling thread's own connection is ever discarded.
        self._local.conn = None
