import threading
import time
from dataclasses import replace

import pymysql
import pytest

from fleetops_data import passwords
from fleetops_data import seed as seeding
from fleetops_data.db import DatabaseUnavailable, Pool, connector, describe
from fleetops_data.store import Store, UserExistsError
from fleetops_data.validation import ValidationError
from fleetops_testing.mariadb import free_port


def fresh_count(database):
    """Count quotes through a new connection: proves a write was committed."""
    conn = pymysql.connect(
        host=database.host,
        port=database.port,
        user=database.user,
        password=database.password,
        database=database.name,
    )
    with conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM quotes")
        return cur.fetchone()[0]


def test_health_once_migrated(migrated):
    assert migrated.health() is None


def test_health_without_schema_says_what_is_missing(store):
    with pytest.raises(DatabaseUnavailable, match="1146") as info:
        store.health()
    assert "quotes" in info.value.reason


def test_add_and_authenticate_a_modern_user(migrated):
    migrated.add_user("carol", "s3cret pass", "editor")
    assert migrated.authenticate("carol", "s3cret pass") == ("carol", "editor")
    assert migrated.authenticate("carol", "s3cret pas") is None
    assert migrated.authenticate("Carol", "s3cret pass") is None  # exact usernames
    assert migrated.authenticate("nobody", "s3cret pass") is None


def test_passwords_are_stored_hashed(migrated, mariadb, database):
    migrated.add_user("dave", "plain-text-password", "viewer")
    with mariadb.root() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT password_hash, salt, scheme FROM `{database.name}`.users")
        stored, salt, scheme = cur.fetchone()
    assert "plain-text-password" not in stored
    assert stored.startswith("scrypt$")
    assert (salt, scheme) == (None, "scrypt")


def test_unknown_users_cost_a_full_verification(migrated, monkeypatch):
    calls = []
    monkeypatch.setattr(passwords, "verify_unknown", calls.append)
    assert migrated.authenticate("ghost", "pw") is None
    assert calls == ["pw"]


def test_add_user_refuses_duplicates_and_bad_input(migrated):
    migrated.add_user("erin", "pw", "viewer")
    with pytest.raises(UserExistsError):
        migrated.add_user("erin", "other", "admin")
    with pytest.raises(ValidationError):
        migrated.add_user("frank", "pw", "superuser")
    with pytest.raises(ValidationError):
        migrated.add_user("x" * 65, "pw", "viewer")
    assert migrated.authenticate("erin", "pw") == ("erin", "viewer")


def test_ensure_user_creates_resets_and_reports_only_real_changes(migrated):
    assert migrated.ensure_user("smoke", "first pass", "viewer") == "created"
    assert migrated.ensure_user("smoke", "first pass", "viewer") == "unchanged"
    assert migrated.ensure_user("smoke", "rotated pass", "viewer") == "updated"
    assert migrated.authenticate("smoke", "first pass") is None
    assert migrated.authenticate("smoke", "rotated pass") == ("smoke", "viewer")
    assert migrated.ensure_user("smoke", "rotated pass", "editor") == "updated"
    assert migrated.authenticate("smoke", "rotated pass") == ("smoke", "editor")


def test_ensure_user_moves_a_legacy_user_to_a_modern_hash(migrated, mariadb, database):
    seeding.seed(migrated)
    assert migrated.ensure_user("bob", "new secret", "viewer") == "updated"
    with mariadb.root() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT salt, scheme FROM `{database.name}`.users WHERE username = 'bob'")
        assert cur.fetchone() == (None, "scrypt")
    assert migrated.authenticate("bob", "new secret") == ("bob", "viewer")


def test_ensure_user_refuses_bad_input_before_touching_the_user(migrated):
    migrated.add_user("erin", "pw", "viewer")
    with pytest.raises(ValidationError):
        migrated.ensure_user("erin", "", "viewer")
    with pytest.raises(ValidationError):
        migrated.ensure_user("erin", "pw", "superuser")
    assert migrated.authenticate("erin", "pw") == ("erin", "viewer")


def test_quotes_round_trip_and_are_committed(migrated, database):
    assert migrated.random_quote() is None
    assert migrated.list_quotes(20, 0) == ([], 0)
    first = migrated.add_quote("Seneca", "Life is long if you know how to use it.")
    second = migrated.add_quote("Zoë", "Émoji 🌍 and ünïcödé survive utf8mb4.")
    assert first["id"] < second["id"]
    assert fresh_count(database) == 2
    assert migrated.list_quotes(20, 0) == ([first, second], 2)
    assert migrated.list_quotes(1, 1) == ([second], 2)
    assert migrated.list_quotes(5, 2) == ([], 2)


def test_random_quote_reaches_every_quote(migrated):
    added = [migrated.add_quote("A", f"quote {i}") for i in range(5)]
    seen = {migrated.random_quote()["id"] for _ in range(200)}
    assert seen == {q["id"] for q in added}


def test_random_quote_does_not_sort_the_table(migrated, monkeypatch):
    migrated.add_quote("A", "only")
    statements = []
    real_execute = pymysql.cursors.Cursor.execute

    def spy(self, query, args=None):
        statements.append(query)
        return real_execute(self, query, args)

    monkeypatch.setattr(pymysql.cursors.Cursor, "execute", spy)
    assert migrated.random_quote()["text"] == "only"
    assert not any("RAND()" in s.upper() for s in statements)


def test_a_constraint_violation_keeps_the_connection(config, migrated):
    store = Store(connector(config), pool_size=1, wait_seconds=1)
    try:
        store.add_user("gina", "pw", "viewer")
        with store.connection() as conn:
            first_id = conn.thread_id()
        with pytest.raises(UserExistsError):
            store.add_user("gina", "pw", "viewer")
        with store.connection() as conn:
            assert conn.thread_id() == first_id
    finally:
        store.close()


def test_pool_reuses_connections(config, migrated):
    store = Store(connector(config), pool_size=2, wait_seconds=1)
    try:
        with store.connection() as a, store.connection() as b:
            ids = {a.thread_id(), b.thread_id()}
        for _ in range(5):
            migrated.health()
            with store.connection() as conn:
                assert conn.thread_id() in ids
    finally:
        store.close()


def test_a_full_pool_makes_callers_wait_then_fail(config, migrated):
    store = Store(connector(config), pool_size=1, wait_seconds=0.2)
    try:
        with store.connection(), pytest.raises(DatabaseUnavailable, match="busy"):
            store.health()
        store.health()  # the slot came back
    finally:
        store.close()


def test_a_waiting_caller_gets_the_connection_when_it_is_returned(config, migrated):
    store = Store(connector(config), pool_size=1, wait_seconds=5)
    outcome = []
    try:
        with store.connection():
            waiter = threading.Thread(target=lambda: outcome.append(store.list_quotes(1, 0)))
            waiter.start()
            time.sleep(0.2)
            assert outcome == []  # still waiting for the only connection
        waiter.join(5)
        assert outcome == [([], 0)]
    finally:
        store.close()


def test_a_connection_killed_by_the_server_is_replaced(config, migrated, mariadb):
    # What every pooled connection sees after a database restart or failover.
    store = Store(connector(config), pool_size=1, wait_seconds=1)
    try:
        with store.connection() as conn:
            stale_id = conn.thread_id()
        with mariadb.root() as root, root.cursor() as cur:
            cur.execute("KILL %s", (stale_id,))
        store.health()
        with store.connection() as conn:
            assert conn.thread_id() != stale_id
    finally:
        store.close()


def kill_then_query(mariadb, conn):
    with mariadb.root() as root, root.cursor() as cur:
        cur.execute("KILL %s", (conn.thread_id(),))
    with conn.cursor() as cur:
        cur.execute("SELECT 1")


def test_a_connection_lost_mid_query_is_a_503_and_discarded(config, migrated, mariadb):
    store = Store(connector(config), pool_size=1, wait_seconds=1)
    try:
        with pytest.raises(DatabaseUnavailable), store.connection() as conn:
            kill_then_query(mariadb, conn)
        store.health()
    finally:
        store.close()


def borrow_and_fail(store, borrowed):
    with store.connection() as conn:
        borrowed.append(conn)
        raise RuntimeError("a bug in the caller")


def test_an_unexpected_error_discards_the_connection(config, migrated):
    store = Store(connector(config), pool_size=1, wait_seconds=1)
    borrowed = []
    try:
        with pytest.raises(RuntimeError):
            borrow_and_fail(store, borrowed)
        assert not borrowed[0].open
        with store.connection() as conn:
            assert conn is not borrowed[0]
    finally:
        store.close()


def test_unreachable_database(config):
    # A port nobody listens on: refused at once, reported, never an unhandled error.
    store = Store.from_config(replace(config, db_port=free_port()))
    with pytest.raises(DatabaseUnavailable, match="2003"):
        store.health()
    store.close()


def test_wrong_database_password(config, migrated):
    store = Store.from_config(replace(config, db_password="not-the-password"))
    with pytest.raises(DatabaseUnavailable, match="1045"):
        store.authenticate("admin", "secret")
    store.close()


def test_describe():
    assert describe(pymysql.err.OperationalError(2003, "Can't connect")) == "(2003) Can't connect"
    assert describe(pymysql.err.Error("Already closed")) == "Already closed"
    assert describe(pymysql.err.InterfaceError()) == "InterfaceError"


def test_pool_close_closes_idle_connections(config, migrated):
    pool = Pool(connector(config), size=2, wait_seconds=1)
    with pool.connection() as conn:
        pass
    assert conn.open
    pool.close()
    assert not conn.open
