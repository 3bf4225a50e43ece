"""Fixtures shared by every app's tests: a real MariaDB server for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetops_testing.mariadb import Database, MariaDBServer


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """A MariaDB server from the Debian package, private to this test session."""
    server = MariaDBServer(tmp_path_factory.mktemp("mariadb"))
    server.install()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def database(mariadb: MariaDBServer) -> Iterator[Database]:
    """An empty database and a least-privilege user of its own, dropped afterwards."""
    mariadb.start()  # a previous test may have stopped the server on purpose
    db = mariadb.create_database()
    try:
        yield db
    finally:
        mariadb.start()
        mariadb.drop_database(db)
