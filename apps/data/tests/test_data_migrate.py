import re
import shutil
import threading

import pytest

from fleetops_data import migrate as migrations
from fleetops_data.db import DatabaseUnavailable
from fleetops_data.migrate import MigrationError, destructive_words, load, migrate
from fleetops_data.store import Store

MIGRATION_FILES = sorted(migrations.MIGRATIONS_DIR.glob("*.sql"))
# The test's own list, independent of the code under test: anything that can lose data or
# break the release still running during a rolling update.
FORBIDDEN = re.compile(r"\b(DROP|TRUNCATE|RENAME|DELETE|REPLACE|MODIFY|CHANGE)\b", re.I)


def root_query(mariadb, database, sql, args=None):
    with mariadb.root() as conn, conn.cursor() as cur:
        cur.execute(f"USE `{database.name}`")
        cur.execute(sql, args)
        return cur.fetchall()


def test_the_shipped_migrations_exist_and_are_numbered():
    assert [p.name for p in MIGRATION_FILES] == ["0001_users.sql", "0002_quotes.sql"]
    assert [m.version for m in load()] == [1, 2]


@pytest.mark.parametrize("path", MIGRATION_FILES, ids=lambda p: p.name)
def test_migrations_only_expand_the_schema(path):
    text = path.read_text()
    assert not FORBIDDEN.search(text), f"{path.name} is not expand-only"
    assert destructive_words(text) == []


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("DROP TABLE quotes;", ["DROP"]),
        ("alter table quotes drop column author;", ["DROP"]),
        ("Truncate quotes;", ["TRUNCATE"]),
        ("ALTER TABLE quotes RENAME TO sayings;", ["RENAME"]),
        ("RENAME TABLE quotes TO sayings;", ["RENAME"]),
        ("ALTER TABLE quotes CHANGE text body TEXT;", ["CHANGE"]),
        ("ALTER TABLE quotes MODIFY author VARCHAR(10);", ["MODIFY"]),
        ("DELETE FROM quotes;", ["DELETE"]),
        ("REPLACE INTO quotes VALUES (1, 'a', 'b');", ["REPLACE"]),
        ("/*!40000 DROP TABLE users */;", ["DROP"]),
        ("-- we drop nothing\nCREATE TABLE t (id INT);", ["DROP"]),
        ("CREATE TABLE dropbox (id INT); ALTER TABLE t ADD COLUMN renamed INT;", []),
        ("CREATE TABLE IF NOT EXISTS t (id INT);", []),
    ],
)
def test_destructive_words(sql, words):
    assert destructive_words(sql) == words


def test_migrations_apply_and_record_their_versions(store, mariadb, database):
    applied = migrate(store)
    assert [m.name for m in applied] == ["0001_users", "0002_quotes"]
    tables = {row[0] for row in root_query(mariadb, database, "SHOW TABLES")}
    assert tables == {"schema_migrations", "users", "quotes"}
    ledger = root_query(mariadb, database, "SELECT version, name, checksum FROM schema_migrations")
    assert [(v, n) for v, n, _ in ledger] == [(1, "0001_users"), (2, "0002_quotes")]
    assert [c for _, _, c in ledger] == [m.checksum for m in load()]
    # utf8mb4 everywhere, and usernames compare exactly.
    columns = root_query(
        mariadb,
        database,
        "SELECT table_name, column_name, character_set_name, collation_name"
        " FROM information_schema.columns WHERE table_schema = %s"
        " AND character_set_name IS NOT NULL",
        (database.name,),
    )
    assert {charset for _, _, charset, _ in columns} == {"utf8mb4"}
    assert ("users", "username", "utf8mb4", "utf8mb4_bin") in columns


def test_migrate_is_idempotent(store, mariadb, database):
    migrate(store)
    root_query(mariadb, database, "INSERT INTO quotes (author, text) VALUES ('a', 'kept')")
    assert migrate(store) == []
    assert migrate(store) == []
    assert root_query(mariadb, database, "SELECT COUNT(*) FROM schema_migrations") == ((2,),)
    assert root_query(mariadb, database, "SELECT text FROM quotes") == (("kept",),)


def test_two_hosts_migrating_at_once_apply_each_migration_once(config, mariadb, database):
    stores = [Store.from_config(config) for _ in range(2)]
    start = threading.Barrier(2)
    results, errors = [], []

    def run(store):
        start.wait()
        try:
            results.append([m.version for m in migrate(store)])
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for store in stores:
        store.close()
    assert errors == []
    assert sorted(results) == [[], [1, 2]]
    assert root_query(mariadb, database, "SELECT version FROM schema_migrations") == ((1,), (2,))


def test_migrate_waits_for_the_lock_and_gives_up(store, mariadb, database):
    # Another host holds the migration lock of this database: we wait, then fail clearly.
    with mariadb.root() as other, other.cursor() as cur:
        cur.execute(f"USE `{database.name}`")
        cur.execute("SELECT GET_LOCK(CONCAT('migrate@', DATABASE()), 0)")
        assert cur.fetchone() == (1,)
        with pytest.raises(DatabaseUnavailable, match="another migrate job held the lock"):
            migrate(store, lock_timeout=1)
    # The lock died with the other session: now it works.
    assert len(migrate(store)) == 2


def test_the_lock_is_per_database(store, mariadb):
    other_db = mariadb.create_database()
    try:
        with mariadb.root() as other, other.cursor() as cur:
            cur.execute(f"USE `{other_db.name}`")
            cur.execute("SELECT GET_LOCK(CONCAT('migrate@', DATABASE()), 0)")
            assert len(migrate(store, lock_timeout=0)) == 2
    finally:
        mariadb.drop_database(other_db)


def write(directory, name, text):
    (directory / name).write_text(text)


def test_a_later_expand_migration_with_several_statements(store, tmp_path, mariadb, database):
    for path in MIGRATION_FILES:
        shutil.copy(path, tmp_path)
    assert len(migrate(store, tmp_path)) == 2
    write(
        tmp_path,
        "0003_quote_source.sql",
        "-- Where a quote comes from; optional, so old releases keep inserting.\n"
        "ALTER TABLE quotes ADD COLUMN IF NOT EXISTS source VARCHAR(200) NULL;\n"
        "\n"
        "CREATE INDEX IF NOT EXISTS quotes_author ON quotes (author);  \n"
        "-- trailing comment only\n",
    )
    applied = migrate(store, tmp_path)
    assert [m.name for m in applied] == ["0003_quote_source"]
    assert len(applied[0].statements()) == 2
    columns = root_query(mariadb, database, "SHOW COLUMNS FROM quotes")
    assert "source" in {row[0] for row in columns}
    assert migrate(store, tmp_path) == []


def test_an_applied_migration_must_not_change(store, tmp_path):
    for path in MIGRATION_FILES:
        shutil.copy(path, tmp_path)
    migrate(store, tmp_path)
    write(tmp_path, "0002_quotes.sql", (tmp_path / "0002_quotes.sql").read_text() + "\n-- x\n")
    with pytest.raises(MigrationError, match="0002_quotes was changed"):
        migrate(store, tmp_path)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"1_users.sql": "CREATE TABLE a (id INT);"}, "named NNNN_name.sql"),
        ({"0001-users.sql": "CREATE TABLE a (id INT);"}, "named NNNN_name.sql"),
        (
            {"0001_a.sql": "CREATE TABLE a (id INT);", "0001_b.sql": "CREATE TABLE b (id INT);"},
            "version 1 is used twice",
        ),
        ({"0001_a.sql": "DROP TABLE quotes;"}, "only expand the schema, found DROP"),
    ],
)
def test_bad_migration_files_are_refused_before_anything_runs(tmp_path, files, message):
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(MigrationError, match=message):
        load(tmp_path)


def test_load_orders_by_version_and_ignores_other_files(tmp_path):
    write(tmp_path, "0010_c.sql", "CREATE TABLE c (id INT);")
    write(tmp_path, "0002_b.sql", "CREATE TABLE b (id INT);")
    write(tmp_path, "README.md", "not a migration")
    assert [m.version for m in load(tmp_path)] == [2, 10]
