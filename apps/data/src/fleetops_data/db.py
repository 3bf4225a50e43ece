"""MariaDB connections: a small thread-safe pool that survives a database restart.

Every failure to reach or use the database surfaces as one exception,
:class:`DatabaseUnavailable`, which the HTTP layer answers with 503. A pooled connection is
pinged before it is handed out and silently replaced when the server went away in between
(restart, failover, idle timeout), so the first request after the database is back succeeds
instead of failing on a stale socket.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
from pymysql.connections import Connection

from fleetops_data.config import Config

Connect = Callable[[], Connection]


class DatabaseUnavailable(Exception):  # noqa: N818 - reads better at call sites than ...Error
    """The database cannot be reached or failed to answer; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def describe(exc: BaseException) -> str:
    """A short, operator-readable reason for a driver error, e.g. ``(2003) Can't connect``."""
    args = getattr(exc, "args", ())
    if len(args) == 2 and isinstance(args[0], int):
        return f"({args[0]}) {args[1]}"
    return str(exc) or type(exc).__name__


def connector(config: Config) -> Connect:
    """A function opening a new connection with the config's settings and timeouts."""

    def connect() -> Connection:
        return pymysql.connect(
            host=config.db_host,
            port=config.db_port,
            database=config.db_name,
            user=config.db_user,
            password=config.db_password,
            charset="utf8mb4",
            # Each statement commits on its own: nothing written waits for a later commit,
            # and a pooled connection never reads from a stale repeatable-read snapshot.
            autocommit=True,
            connect_timeout=config.db_connect_timeout,
            read_timeout=config.db_read_timeout,
            write_timeout=config.db_write_timeout,
        )

    return connect


class Pool:
    """At most ``size`` open connections shared by the server's worker threads."""

    def __init__(self, connect: Connect, size: int, wait_seconds: float) -> None:
        self._connect = connect
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._wait_seconds = wait_seconds

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """Lend a live connection; driver errors other than a constraint violation
        (the server went away, timed out, lacks a table ...) become
        :class:`DatabaseUnavailable`."""
        if not self._slots.acquire(timeout=self._wait_seconds):
            raise DatabaseUnavailable("all database connections are busy")
        conn: Connection | None = None
        try:
            conn = self._live_connection()
            yield conn
        except pymysql.IntegrityError:
            # The caller's data broke a constraint (a duplicate key): it has a meaning the
            # caller handles, and the connection is still sound.
            raise
        except pymysql.MySQLError as exc:
            # After an error the connection's state is unknown; never lend it again.
            self._close(conn)
            conn = None
            raise DatabaseUnavailable(describe(exc)) from exc
        except BaseException:
            self._close(conn)
            conn = None
            raise
        finally:
            if conn is not None:
                with self._lock:
                    self._idle.append(conn)
            self._slots.release()

    def _live_connection(self) -> Connection:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None:
            try:
                conn.ping()
            except pymysql.MySQLError:
                # Stale (the server restarted or closed it): replace it transparently.
                self._close(conn)
            else:
                return conn
        return self._connect()

    @staticmethod
    def _close(conn: Connection | None) -> None:
        if conn is not None:
            with contextlib.suppress(pymysql.MySQLError):
                conn.close()

    def close(self) -> None:
        """Close the idle connections, once the server has stopped lending them."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            self._close(conn)


@contextlib.contextmanager
def named_lock(conn: Connection, job: str, timeout_seconds: int) -> Iterator[None]:
    """Hold the lock on ``job`` in this database so two data hosts never run it at once.

    ``GET_LOCK`` names are server-wide (and at most 64 characters), so the name carries the
    database: other databases on the same server are not held up.
    """
    name = "LEFT(CONCAT(%s, '@', DATABASE()), 64)"
    with conn.cursor() as cur:
        cur.execute(f"SELECT GET_LOCK({name}, %s)", (job, timeout_seconds))
        row: Any = cur.fetchone()
    if row[0] != 1:
        raise DatabaseUnavailable(f"another {job} job held the lock for {timeout_seconds}s")
    try:
        yield
    finally:
        with conn.cursor() as cur:
            cur.execute(f"SELECT RELEASE_LOCK({name})", (job,))
