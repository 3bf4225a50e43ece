"""Seed data for the local fleet only: the capstone's four users and a few hundred quotes.

Staging and prod are never seeded (their users are created with ``add-user``): these
passwords are published in docs/api.md. Seeding is idempotent, so the data role can run it on
every deploy of a dev environment.
"""

from __future__ import annotations

import json
from pathlib import Path

from fleetops_data import passwords, validation
from fleetops_data.db import named_lock
from fleetops_data.store import Store

QUOTES_FILE = Path(__file__).parent / "seed" / "quotes.json"
LOCK_TIMEOUT_SECONDS = 60

# (username, password, salt, role) exactly as the capstone's MySQL test data has them.
SEED_USERS = (
    ("admin", "secret", "F^S%QljSfV", "admin"),
    ("bob", "thisIsNotAPasswordBob", "F^S%QljSfV", "viewer"),
    ("noadmin", "noPow3r", "KjvFUC#K*i", "editor"),
    ("antonio", "cotorro", "ew.qCjqXA/Hw", "viewer"),
)


def load_quotes(path: Path = QUOTES_FILE) -> list[tuple[str, str]]:
    """``(author, text)`` pairs from a JSON list, checked like quotes posted to the API."""
    entries = json.loads(path.read_text(encoding="utf-8"))
    return [validation.new_quote(entry) for entry in entries]


def seed(store: Store, quotes_file: Path = QUOTES_FILE) -> tuple[int, int]:
    """Insert the seed users and quotes that are missing; return how many of each."""
    quotes = load_quotes(quotes_file)
    users = [
        (name, passwords.legacy_hash(password, salt), salt, passwords.LEGACY, role)
        for name, password, salt, role in SEED_USERS
    ]
    with (
        store.connection() as conn,
        named_lock(conn, "seed", LOCK_TIMEOUT_SECONDS),
        conn.cursor() as cur,
    ):
        # IGNORE keeps users that exist, including ones whose password was changed since.
        added_users = cur.executemany(
            "INSERT IGNORE INTO users (username, password_hash, salt, scheme, role)"
            " VALUES (%s, %s, %s, %s, %s)",
            users,
        )
        # Quotes have no natural key, so compare with what is stored rather than relying on
        # a unique index; the lock keeps two concurrent seeds from both inserting.
        cur.execute("SELECT author, text FROM quotes")
        existing = set(cur.fetchall())
        missing = [quote for quote in dict.fromkeys(quotes) if quote not in existing]
        added_quotes = (
            cur.executemany("INSERT INTO quotes (author, text) VALUES (%s, %s)", missing) or 0
        )
    return added_users, added_quotes
