"""Versioned, expand-only schema migrations, applied before a new release starts.

Each ``migrations/NNNN_name.sql`` runs once per database; its version, name and checksum
are recorded in ``schema_migrations``. MariaDB commits every DDL statement on its own, so a
migration interrupted half-way is simply run again from its start: write every statement so
that repeating it is harmless (``CREATE TABLE IF NOT EXISTS``, ``ADD COLUMN IF NOT EXISTS``).

Migrations only ever expand the schema. Rolling updates run old and new releases side by
side against one database, and a dropped or renamed column would break the old one; data
must never be lost. :func:`destructive_words` enforces this on every load.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from fleetops_data.db import named_lock
from fleetops_data.store import Store

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Long enough for the other data host's run to finish, short enough to fail a stuck deploy.
LOCK_TIMEOUT_SECONDS = 120

_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
# Statements that lose data or break the release still running: never in a migration, not
# even in a comment (MariaDB executes /*! ... */ "comments").
_DESTRUCTIVE = re.compile(r"\b(DROP|TRUNCATE|RENAME|DELETE|REPLACE|MODIFY|CHANGE)\b", re.IGNORECASE)
_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INT UNSIGNED NOT NULL,
    name VARCHAR(200) NOT NULL,
    checksum CHAR(64) NOT NULL,
    applied_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (version)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4
"""


class MigrationError(Exception):
    """The migration files or the recorded history cannot be applied safely."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """The statements in order: each ends with ``;`` at the end of a line."""
        code = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        return [part.strip() for part in _STATEMENT_END.split(code) if part.strip()]


def destructive_words(sql: str) -> list[str]:
    """The destructive keywords in ``sql`` (upper-cased, in order); empty when it is safe."""
    return [match.upper() for match in _DESTRUCTIVE.findall(sql)]


def load(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration in ``directory`` in version order, after checking each is safe."""
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        migration = Migration(int(match[1]), path.stem, path.read_text(encoding="utf-8"))
        if migration.version in migrations:
            raise MigrationError(f"{path.name}: version {migration.version} is used twice")
        if words := destructive_words(migration.sql):
            raise MigrationError(
                f"{path.name}: migrations only expand the schema, found {', '.join(words)}"
            )
        migrations[migration.version] = migration
    return [migrations[version] for version in sorted(migrations)]


def pending(migrations: list[Migration], applied: dict[int, str]) -> list[Migration]:
    """The migrations not applied yet; ``applied`` maps version to recorded checksum."""
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            # Editing an applied migration would leave databases that ran the old text
            # and databases that run the new one with different schemas.
            raise MigrationError(
                f"{migration.name} was changed after it was applied; add a new migration instead"
            )
    return [m for m in migrations if m.version not in applied]


def migrate(
    store: Store, directory: Path = MIGRATIONS_DIR, lock_timeout: int = LOCK_TIMEOUT_SECONDS
) -> list[Migration]:
    """Apply the pending migrations and return them; a no-op when the schema is current."""
    migrations = load(directory)
    # Both data hosts may run this at once during a deploy; the lock makes the second wait
    # and then find nothing left to do.
    with (
        store.connection() as conn,
        named_lock(conn, "migrate", lock_timeout),
        conn.cursor() as cur,
    ):
        cur.execute(_CREATE_LEDGER)
        cur.execute("SELECT version, checksum FROM schema_migrations")
        todo = pending(migrations, {int(v): c for v, c in cur.fetchall()})
        for migration in todo:
            for statement in migration.statements():
                cur.execute(statement)
            cur.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
    return todo
