"""Fixtures of the data service's tests, on top of the session's real MariaDB (apps/conftest)."""

from __future__ import annotations

import pytest
import webtest
from data_testkit import TOKEN

from fleetops_data.app import build_app
from fleetops_data.config import Config
from fleetops_data.migrate import migrate
from fleetops_data.store import Store
from fleetops_testing.mariadb import free_port


@pytest.fixture
def env(database):
    """The environment a data host's EnvironmentFile would give, for the test database."""
    return {
        **database.env(),
        "DATA_API_TOKEN": TOKEN,
        "APP_VERSION": "1.2.3-test",
        "DB_CONNECT_TIMEOUT": "1",
        "DB_READ_TIMEOUT": "2",
        "DB_WRITE_TIMEOUT": "2",
        "DB_POOL_SIZE": "4",
    }


@pytest.fixture
def config(env):
    return Config.from_env(env)


@pytest.fixture
def store(config):
    store = Store.from_config(config)
    yield store
    store.close()


@pytest.fixture
def migrated(store):
    """A store whose database has the current schema and no rows."""
    migrate(store)
    return store


@pytest.fixture
def client(config, migrated):
    """The WSGI app with the service token sent on every request."""
    return webtest.TestApp(
        build_app(config, migrated), extra_environ={"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    )


@pytest.fixture
def anonymous(config, migrated):
    """The WSGI app, without any Authorization header."""
    return webtest.TestApp(build_app(config, migrated))


@pytest.fixture
def offline_config():
    """Settings pointing at a port nobody listens on: any database call fails at once."""
    return Config.from_env(
        {
            "DATA_API_TOKEN": TOKEN,
            "APP_VERSION": "1.2.3-test",
            "DB_PORT": str(free_port()),
            "DB_USER": "nobody",
            "DB_PASSWORD": "nothing",
        }
    )


@pytest.fixture
def offline(offline_config):
    """The app, with the token, and without a database.

    For requests that must be answered before the database is touched (authentication,
    input checks): they get the same answer as with a database, and a 503 would show that
    the database was consulted too early.
    """
    store = Store.from_config(offline_config)
    yield webtest.TestApp(
        build_app(offline_config, store),
        extra_environ={"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"},
    )
    store.close()


@pytest.fixture
def offline_anonymous(offline_config):
    store = Store.from_config(offline_config)
    yield webtest.TestApp(build_app(offline_config, store))
    store.close()
