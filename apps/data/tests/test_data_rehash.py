"""Seed users' legacy SHA-512 hashes become scrypt on their first successful login."""

import logging

import pytest

from fleetops_data import passwords
from fleetops_data import seed as seeding


@pytest.fixture
def seeded(migrated):
    seeding.seed(migrated)
    return migrated


@pytest.fixture
def row(mariadb, database):
    """The stored ``(password_hash, salt, scheme, role, created_at)`` of a user, read as root."""

    def read(username):
        with mariadb.root() as conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT password_hash, salt, scheme, role, created_at FROM `{database.name}`.users"
                " WHERE username = %s",
                (username,),
            )
            return cur.fetchone()

    return read


@pytest.fixture
def as_root(mariadb, database):
    """Run one statement in the test database as root, behind the service's back."""

    def run(sql, args=()):
        with mariadb.root() as conn, conn.cursor() as cur:
            cur.execute(f"USE `{database.name}`")
            cur.execute(sql, args)

    return run


def legacy_row(username, password, salt, role):
    return (passwords.legacy_hash(password, salt), salt, passwords.LEGACY, role)


@pytest.mark.parametrize("user", seeding.SEED_USERS, ids=[u[0] for u in seeding.SEED_USERS])
def test_a_successful_login_upgrades_the_hash_to_scrypt(seeded, row, user):
    username, password, salt, role = user
    assert row(username)[:4] == legacy_row(username, password, salt, role)
    assert seeded.authenticate(username, password) == (username, role)
    stored, new_salt, scheme, new_role, _ = row(username)
    assert (new_salt, scheme, new_role) == (None, passwords.SCRYPT, role)
    assert stored.startswith("scrypt$16384$8$1$")
    assert passwords.verify(stored, None, scheme, password)
    # The next logins verify against the new hash, which stays as it is.
    assert seeded.authenticate(username, password) == (username, role)
    assert seeded.authenticate(username, password + "x") is None
    assert row(username)[0] == stored


def test_a_failed_login_leaves_the_legacy_row_untouched(seeded, row):
    before = row("admin")
    assert before[2] == passwords.LEGACY
    assert seeded.authenticate("admin", "not-the-password") is None
    assert seeded.authenticate("admin", "SECRET") is None
    assert seeded.authenticate("admin", "") is None
    assert row("admin") == before


def test_an_upgraded_user_is_still_unchanged_for_ensure_user(seeded, row):
    assert seeded.ensure_user("bob", "thisIsNotAPasswordBob", "viewer") == "unchanged"
    assert row("bob")[2] == passwords.SCRYPT


def test_the_http_login_upgrades_transparently(seeded, client, row):
    body = {"username": "noadmin", "password": "noPow3r"}
    for _ in range(2):
        response = client.post_json("/api/auth", body)
        assert response.json == {"username": "noadmin", "role": "editor"}
        assert row("noadmin")[2] == passwords.SCRYPT
    client.post_json("/api/auth", {**body, "password": "noPow3r!"}, status=401)


@pytest.mark.parametrize(
    "change",
    [
        # An operator's ensure-user (or a concurrent login's upgrade): a scrypt hash.
        ("rotated", passwords.hash_password("rotated"), None, passwords.SCRYPT),
        # Still legacy, so only the condition on the hash itself can tell the rows apart.
        ("reseeded", passwords.legacy_hash("reseeded", "s"), "s", passwords.LEGACY),
    ],
    ids=["to-scrypt", "to-another-legacy-hash"],
)
def test_the_upgrade_never_overwrites_a_row_changed_after_the_check(
    seeded, row, as_root, monkeypatch, change
):
    new_password, *new_row = change
    real_verify = passwords.verify

    def verify_then_change_the_password(*args):
        result = real_verify(*args)
        as_root(
            "UPDATE users SET password_hash = %s, salt = %s, scheme = %s WHERE username = 'bob'",
            new_row,
        )
        return result

    monkeypatch.setattr(passwords, "verify", verify_then_change_the_password)
    # The password was right when checked: this login succeeds ...
    assert seeded.authenticate("bob", "thisIsNotAPasswordBob") == ("bob", "viewer")
    monkeypatch.undo()
    # ... but the change made in between stands, and the old password no longer works.
    assert list(row("bob")[:3]) == new_row
    assert seeded.authenticate("bob", "thisIsNotAPasswordBob") is None
    assert seeded.authenticate("bob", new_password) == ("bob", "viewer")


def test_a_failed_upgrade_write_does_not_fail_the_login(seeded, row, as_root, caplog):
    # A real database error on exactly that UPDATE (SQLSTATE 45000), not a mock.
    as_root(
        "CREATE TRIGGER users_read_only BEFORE UPDATE ON users FOR EACH ROW"
        " SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'users are read-only'"
    )
    before = row("antonio")
    with caplog.at_level(logging.WARNING, logger="fleetops-data"):
        assert seeded.authenticate("antonio", "cotorro") == ("antonio", "viewer")
    assert row("antonio") == before
    assert "could not upgrade the password hash of user 'antonio'" in caplog.text
    assert "users are read-only" in caplog.text
    assert "cotorro" not in caplog.text
    # The pool dropped the failed connection and serves the next login; once the database
    # accepts the write again, that login does the upgrade.
    assert seeded.authenticate("antonio", "cotorro") == ("antonio", "viewer")
    as_root("DROP TRIGGER users_read_only")
    assert seeded.authenticate("antonio", "cotorro") == ("antonio", "viewer")
    assert row("antonio")[2] == passwords.SCRYPT


def test_a_database_gone_before_the_upgrade_does_not_fail_the_login(
    seeded, row, mariadb, monkeypatch, caplog
):
    real_verify = passwords.verify

    def verify_then_lose_the_database(*args):
        result = real_verify(*args)
        mariadb.stop()
        return result

    monkeypatch.setattr(passwords, "verify", verify_then_lose_the_database)
    with caplog.at_level(logging.WARNING, logger="fleetops-data"):
        assert seeded.authenticate("admin", "secret") == ("admin", "admin")
    assert "could not upgrade the password hash of user 'admin'" in caplog.text
    monkeypatch.undo()
    mariadb.start()
    assert row("admin")[2] == passwords.LEGACY
    assert seeded.authenticate("admin", "secret") == ("admin", "admin")
    assert row("admin")[2] == passwords.SCRYPT
