import hashlib
import json
import threading

import pytest

from fleetops_data import seed as seeding
from fleetops_data.store import Store
from fleetops_data.validation import ValidationError

QUOTES = json.loads(seeding.QUOTES_FILE.read_text(encoding="utf-8"))


def normalized(text):
    return " ".join(text.lower().split())


def test_there_are_at_least_200_unique_quotes():
    assert isinstance(QUOTES, list)
    assert len(QUOTES) >= 200
    texts = [normalized(q["text"]) for q in QUOTES]
    assert len(set(texts)) == len(texts), "duplicate quotes in seed/quotes.json"
    for quote in QUOTES:
        assert set(quote) == {"author", "text"}
        assert quote["author"].strip() == quote["author"] != ""
        assert 0 < len(quote["text"]) <= 1000
        assert len(quote["author"]) <= 100


def test_seed_inserts_everything_once(migrated, mariadb, database):
    assert seeding.seed(migrated) == (4, len(QUOTES))
    assert seeding.seed(migrated) == (0, 0)
    with mariadb.root() as conn, conn.cursor() as cur:
        cur.execute(f"USE `{database.name}`")
        cur.execute("SELECT COUNT(*), COUNT(DISTINCT text) FROM quotes")
        assert cur.fetchone() == (len(QUOTES), len(QUOTES))
        cur.execute("SELECT username, password_hash, salt, scheme, role FROM users")
        users = {row[0]: row[1:] for row in cur.fetchall()}
    expected = {
        "admin": ("secret", "F^S%QljSfV", "admin"),
        "bob": ("thisIsNotAPasswordBob", "F^S%QljSfV", "viewer"),
        "noadmin": ("noPow3r", "KjvFUC#K*i", "editor"),
        "antonio": ("cotorro", "ew.qCjqXA/Hw", "viewer"),
    }
    assert set(users) == set(expected)
    for name, (password, salt, role) in expected.items():
        # Stored exactly as the capstone did: hex SHA-512 of password + salt.
        digest = hashlib.sha512((password + salt).encode()).hexdigest()
        assert users[name] == (digest, salt, "sha512", role)
        assert migrated.authenticate(name, password) == (name, role)


def test_seed_keeps_users_and_quotes_that_exist(migrated):
    migrated.add_user("admin", "changed-password", "viewer")
    migrated.add_quote(QUOTES[0]["author"], QUOTES[0]["text"])
    assert seeding.seed(migrated) == (3, len(QUOTES) - 1)
    assert migrated.authenticate("admin", "secret") is None
    assert migrated.authenticate("admin", "changed-password") == ("admin", "viewer")
    assert migrated.list_quotes(1, 0)[1] == len(QUOTES)


def test_concurrent_seeds_insert_once(config, migrated):
    stores = [Store.from_config(config) for _ in range(2)]
    results = []
    threads = [threading.Thread(target=lambda s=s: results.append(seeding.seed(s))) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for store in stores:
        store.close()
    assert sorted(results) == [(0, 0), (4, len(QUOTES))]
    assert migrated.list_quotes(1, 0)[1] == len(QUOTES)


def test_seed_file_is_checked_and_deduplicated(migrated, tmp_path):
    path = tmp_path / "quotes.json"
    path.write_text(json.dumps([{"author": " A ", "text": "one"}, {"author": "A", "text": "one"}]))
    assert seeding.load_quotes(path) == [("A", "one"), ("A", "one")]
    assert seeding.seed(migrated, path) == (4, 1)
    path.write_text(json.dumps([{"author": "A", "text": ""}]))
    with pytest.raises(ValidationError, match="text"):
        seeding.load_quotes(path)
