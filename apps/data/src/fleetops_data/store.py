"""Users and quotes in MariaDB: explicit methods, parameterized SQL only."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterator
from typing import Any, TypedDict

import pymysql
from pymysql.connections import Connection

from fleetops_data import passwords, validation
from fleetops_data.config import Config
from fleetops_data.db import Connect, DatabaseUnavailable, Pool, connector, describe

log = logging.getLogger("fleetops-data")


class Quote(TypedDict):
    id: int
    author: str
    text: str


class UserExistsError(Exception):
    """``add_user`` was asked for a username that is already taken."""


def _quote(row: Any) -> Quote:
    return {"id": int(row[0]), "author": row[1], "text": row[2]}


class Store:
    """The data service's only door to the database."""

    def __init__(self, connect: Connect, pool_size: int, wait_seconds: float) -> None:
        self._pool = Pool(connect, pool_size, wait_seconds)

    @classmethod
    def from_config(cls, config: Config) -> Store:
        # A request waits for a free connection at most as long as a slow query may take.
        wait = config.db_connect_timeout + config.db_read_timeout
        return cls(connector(config), config.db_pool_size, wait)

    def connection(self) -> contextlib.AbstractContextManager[Connection]:
        """A pooled connection, for the migration and seed jobs."""
        return self._pool.connection()

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        with self._pool.connection() as conn, conn.cursor() as cur:
            yield cur

    def close(self) -> None:
        self._pool.close()

    def health(self) -> None:
        """Return when the schema is reachable, else raise :class:`DatabaseUnavailable`."""
        with self._cursor() as cur:
            # Touches a real table, so a missing schema reads as unhealthy, not "ok".
            cur.execute("SELECT 1 FROM quotes LIMIT 1")
            cur.fetchall()

    def authenticate(self, username: str, password: str) -> tuple[str, str] | None:
        """``(username, role)`` when the password is right; ``None`` otherwise."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT username, password_hash, salt, scheme, role FROM users WHERE username = %s",
                (username,),
            )
            row = cur.fetchone()
        if row is None:
            passwords.verify_unknown(password)
            return None
        name, stored_hash, salt, scheme, role = row
        if not passwords.verify(stored_hash, salt, scheme, password):
            return None
        if passwords.needs_rehash(scheme):
            # Only a right password gets here: a failed login never touches the row, and the
            # extra scrypt of the new hash tells a guesser nothing (timing differs only once
            # the password is known).
            self._rehash(name, stored_hash, password)
        return name, role

    def _rehash(self, username: str, old_hash: str, password: str) -> None:
        """Replace ``old_hash`` with a scrypt hash of ``password``, if it is still stored.

        Best effort: the credentials were right, so a failure to write only postpones the
        upgrade to the next login and must not turn this one into an error.
        """
        # A separate autocommit statement, not one transaction with the SELECT: holding the
        # row lock through two scrypt computations would serialize that user's logins, and
        # the WHERE clause gives the same guarantee. It matches only while the row still
        # holds the hash just verified, so a password changed (or already upgraded by a
        # concurrent login) in between is never overwritten. BINARY: the column's collation
        # ignores case, the comparison must not.
        new_hash = passwords.hash_password(password)
        try:
            with self._cursor() as cur:
                upgraded = cur.execute(
                    "UPDATE users SET password_hash = %s, salt = NULL, scheme = %s"
                    " WHERE username = %s AND password_hash = BINARY %s",
                    (new_hash, passwords.SCRYPT, username, old_hash),
                )
        except (DatabaseUnavailable, pymysql.MySQLError) as exc:
            log.warning(
                "could not upgrade the password hash of user %r: %s", username, describe(exc)
            )
            return
        if upgraded:
            log.info("upgraded the password hash of user %r to %s", username, passwords.SCRYPT)

    def add_user(self, username: str, password: str, role: str) -> None:
        """Store a new user with a modern (scrypt) password hash.

        Raises ``ValidationError`` for an unusable username, password or role and
        :class:`UserExistsError` when the username is taken.
        """
        validation.check_new_user(username, password, role)
        password_hash = passwords.hash_password(password)
        try:
            with self._cursor() as cur:
                cur.execute(
                    "INSERT INTO users (username, password_hash, salt, scheme, role)"
                    " VALUES (%s, %s, NULL, %s, %s)",
                    (username, password_hash, passwords.SCRYPT, role),
                )
        except pymysql.IntegrityError:
            raise UserExistsError(username) from None

    def ensure_user(self, username: str, password: str, role: str) -> str:
        """Make ``username`` exist with exactly this password and role.

        Returns ``"unchanged"``, ``"created"`` or ``"updated"`` (so that a deploy tool can
        report a change only when there was one). Raises ``ValidationError`` like
        :meth:`add_user`.
        """
        validation.check_new_user(username, password, role)
        if self.authenticate(username, password) == (username, role):
            return "unchanged"
        try:
            self.add_user(username, password, role)
        except UserExistsError:
            with self._cursor() as cur:
                cur.execute(
                    "UPDATE users SET password_hash = %s, salt = NULL, scheme = %s, role = %s"
                    " WHERE username = %s",
                    (passwords.hash_password(password), passwords.SCRYPT, role, username),
                )
            return "updated"
        return "created"

    def random_quote(self) -> Quote | None:
        """A random quote, found through the primary key instead of sorting the table."""
        with self._cursor() as cur:
            cur.execute("SELECT MIN(id), MAX(id) FROM quotes")
            low, high = cur.fetchone()
            if low is None:
                return None
            # The first id at or above a random point in [low, high] always exists. Gaps in
            # the ids (auto-increment may skip values) only skew the odds slightly.
            pick = low + secrets.randbelow(high - low + 1)
            cur.execute(
                "SELECT id, author, text FROM quotes WHERE id >= %s ORDER BY id LIMIT 1", (pick,)
            )
            return _quote(cur.fetchone())

    def list_quotes(self, limit: int, offset: int) -> tuple[list[Quote], int]:
        """One page of quotes in id order, and how many quotes there are in all."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT id, author, text FROM quotes ORDER BY id LIMIT %s OFFSET %s",
                (limit, offset),
            )
            items = [_quote(row) for row in cur.fetchall()]
            cur.execute("SELECT COUNT(*) FROM quotes")
            (total,) = cur.fetchone()
        return items, int(total)

    def add_quote(self, author: str, text: str) -> Quote:
        """Store a quote (committed before this returns) and return it with its id."""
        with self._cursor() as cur:
            cur.execute("INSERT INTO quotes (author, text) VALUES (%s, %s)", (author, text))
            return {"id": int(cur.lastrowid), "author": author, "text": text}
