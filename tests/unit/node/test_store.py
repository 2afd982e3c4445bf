"""The database: numbered migrations recorded in order, on new and on existing databases.

An existing node must open after an upgrade with its data intact and the same schema a
new node gets; a database written by a newer trustspace must be refused, untouched.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from node.config import Config
from node.errors import InvalidHome, TrustspaceError
from node.home import DB_FILE, KEY_FILE, Home
from node.identity import NodeCard, NodeKeys, SignedCard
from node.store.db import (
    WAL_CHECKPOINT_PAGES,
    _migration_sql,
    _statements,
    applied_migrations,
    connect,
    migrate,
    migration_names,
    transaction,
)

NAMES = migration_names()
CONFIG = Config(name="prov", domain="data.qingdao", listen="127.0.0.1:7001")


def schema(db: Path) -> list[tuple[str, str, str]]:
    """Every table and index as SQLite itself describes it, in a stable order."""
    conn = sqlite3.connect(db)
    try:
        return sorted(conn.execute("SELECT type, name, coalesce(sql, '') FROM sqlite_master "
                                   "WHERE name NOT LIKE 'sqlite_%'").fetchall())
    finally:
        conn.close()


def recorded(db: Path) -> list[tuple[str, int]]:
    """schema_migrations in the order rows were written."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT name, applied_at FROM schema_migrations "
                            "ORDER BY rowid").fetchall()
    finally:
        conn.close()


def apply_by_hand(db: Path, names: list[str], applied_at: int = 1) -> None:
    """What an older trustspace left behind: these migrations, recorded, and nothing else."""
    conn = sqlite3.connect(db)
    try:
        conn.executescript("CREATE TABLE schema_migrations "
                           "(name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)")
        for name in names:
            conn.executescript(_migration_sql(name))
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, applied_at))
        conn.commit()
    finally:
        conn.close()


def home_with_db_of(tmp_path: Path, names: list[str]) -> Path:
    """A real home (config, key) whose database knows only ``names``."""
    path = tmp_path / "home"
    Home.init(path, CONFIG).close()
    for suffix in ("", "-wal", "-shm"):
        (path / (DB_FILE + suffix)).unlink(missing_ok=True)
    apply_by_hand(path / DB_FILE, names)
    return path


def peer_card_json() -> str:
    keys = NodeKeys.generate()
    card = NodeCard.issue(keys, "cons", "finance.qingdao", "127.0.0.1:7002")
    return SignedCard.create(keys, card).to_json()


def test_migrations_are_numbered_without_gaps() -> None:
    assert NAMES, "no migrations found"
    for number, name in enumerate(NAMES, start=1):
        assert re.fullmatch(rf"{number:04d}_[a-z0-9_]+\.sql", name), name
    assert NAMES[0] == "0001_node.sql"


def test_a_new_database_records_every_migration_in_order(tmp_path: Path) -> None:
    conn = connect(tmp_path / "new.db")
    try:
        assert migrate(conn) == NAMES
        assert applied_migrations(conn) == NAMES
        assert migrate(conn) == []  # a second run finds nothing to do
    finally:
        conn.close()
    rows = recorded(tmp_path / "new.db")
    assert [name for name, _ in rows] == NAMES
    times = [at for _, at in rows]
    assert times == sorted(times)


@pytest.mark.parametrize("done", range(1, len(NAMES) + 1),
                         ids=[f"written by a node that knew up to {n}" for n in NAMES])
def test_an_existing_database_is_migrated_on_open(tmp_path: Path, done: int) -> None:
    fresh = tmp_path / "fresh"
    Home.init(fresh, CONFIG).close()
    path = home_with_db_of(tmp_path, NAMES[:done])
    conn = sqlite3.connect(path / DB_FILE)
    card = peer_card_json()
    conn.execute("INSERT INTO node_meta VALUES ('card_issued_at', '1700000000000')")
    conn.execute("INSERT INTO peers VALUES ('n1', 'cons', 'finance.qingdao', '127.0.0.1:7002', "
                 "?, 5, NULL)", (card,))
    conn.commit()
    conn.close()

    home = Home.open(path)
    try:
        # 1. the missing migrations ran, after the old ones, in order; old records are kept
        rows = recorded(path / DB_FILE)
        assert [name for name, _ in rows] == NAMES
        assert [at for _, at in rows[:done]] == [1] * done
        assert all(at > 1 for _, at in rows[done:])
        # 2. the schema is exactly the one a new node gets
        assert schema(path / DB_FILE) == schema(fresh / DB_FILE)
        # 3. the old data is still there and the node works on it
        assert home.card().issued_at == 1700000000000
        assert home.conn.execute("SELECT card FROM peers").fetchone()[0] == card
        home.record("test.event", {"n": 1})
        assert home.audit.size() == 1
    finally:
        home.close()


FUTURE = {
    "a newer migration after all of ours": [*NAMES, "9999_from_the_future.sql"],
    "a newer migration after only the first of ours": [NAMES[0], "9999_from_the_future.sql"],
}


@pytest.mark.parametrize("names", list(FUTURE.values()), ids=list(FUTURE))
def test_a_database_from_a_newer_trustspace_is_refused_untouched(tmp_path: Path,
                                                                 names: list[str]) -> None:
    path = home_with_db_of(tmp_path, [n for n in names if n in NAMES])
    conn = sqlite3.connect(path / DB_FILE)
    conn.execute("INSERT INTO schema_migrations VALUES ('9999_from_the_future.sql', 2)")
    conn.commit()
    conn.close()
    before = (schema(path / DB_FILE), recorded(path / DB_FILE))

    with pytest.raises(InvalidHome, match=r"newer trustspace \(migration "
                                          r"9999_from_the_future\.sql\); upgrade trustspace"):
        Home.open(path)
    assert (schema(path / DB_FILE), recorded(path / DB_FILE)) == before


def _garbage(path: Path) -> None:
    (path / DB_FILE).write_bytes(b"this is not a database" * 100)


def _truncated(path: Path) -> None:
    data = (path / DB_FILE).read_bytes()
    (path / DB_FILE).write_bytes(data[:5000])


def _no_key(path: Path) -> None:
    (path / KEY_FILE).unlink()


def _no_db(path: Path) -> None:
    (path / DB_FILE).unlink()


def _bad_config(path: Path) -> None:
    (path / "config.toml").write_text("[node]\nname = 'prov'\n")


def _unknown_config_key(path: Path) -> None:
    with (path / "config.toml").open("a") as f:
        f.write("colour = 'blue'\n")


OPEN_REFUSALS = {
    "database is not SQLite": (_garbage, "is damaged or not a trustspace database"),
    "database cut short": (_truncated, "is damaged or not a trustspace database"),
    "key file missing": (_no_key, "missing its key or database"),
    "database missing": (_no_db, "missing its key or database"),
    "config missing a key": (_bad_config, "is missing node.domain"),
    "config with an unknown key": (_unknown_config_key, "unknown key node.colour"),
}


@pytest.mark.parametrize(("damage", "message"), list(OPEN_REFUSALS.values()),
                         ids=list(OPEN_REFUSALS))
def test_opening_a_damaged_home_is_refused_clearly(tmp_path: Path, damage: object,
                                                   message: str) -> None:
    path = tmp_path / "home"
    home = Home.init(path, CONFIG)
    home.close()
    for suffix in ("-wal", "-shm"):
        (path / (DB_FILE + suffix)).unlink(missing_ok=True)
    damage(path)  # type: ignore[operator]
    with pytest.raises(InvalidHome, match=message) as caught:
        Home.open(path)
    assert "\n" not in str(caught.value)


def test_opening_a_folder_that_is_not_a_home(tmp_path: Path) -> None:
    with pytest.raises(InvalidHome, match="is not a trustspace home"):
        Home.open(tmp_path / "nowhere")
    with pytest.raises(InvalidHome, match="no config.toml"):
        Home.open(tmp_path)


def test_a_transaction_commits_all_or_nothing(tmp_path: Path) -> None:
    conn = connect(tmp_path / "t.db")
    conn.execute("CREATE TABLE t (x INTEGER)")
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(TrustspaceError), transaction(conn):
        conn.execute("INSERT INTO t VALUES (2)")
        raise TrustspaceError("stop")
    assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    assert not conn.in_transaction
    conn.close()


STATEMENTS = {
    "two statements": ("CREATE TABLE a (x);\nCREATE TABLE b (y);\n",
                       ["CREATE TABLE a (x);", "CREATE TABLE b (y);"]),
    "comment lines dropped": ("-- a comment; with a semicolon\nCREATE TABLE a (x);\n",
                              ["CREATE TABLE a (x);"]),
    "semicolon inside a string": ("INSERT INTO a VALUES ('x;y');\n",
                                  ["INSERT INTO a VALUES ('x;y');"]),
    "statement over several lines": ("CREATE TABLE a (\n    x INTEGER\n);\n",
                                     ["CREATE TABLE a (\n    x INTEGER\n);"]),
    "last statement without a semicolon": ("CREATE TABLE a (x)", ["CREATE TABLE a (x)"]),
}


@pytest.mark.parametrize(("sql", "expected"), list(STATEMENTS.values()), ids=list(STATEMENTS))
def test_migration_files_are_split_into_statements(sql: str, expected: list[str]) -> None:
    assert _statements(sql) == expected


@pytest.mark.parametrize("pragma, expected", [
    pytest.param("journal_mode", "wal", id="readers go on while one thread writes"),
    pytest.param("synchronous", 1, id="NORMAL: survives any process crash"),
    pytest.param("wal_autocheckpoint", WAL_CHECKPOINT_PAGES,
                 id="the WAL is copied back every 10,000 pages"),
    pytest.param("foreign_keys", 1, id="references are enforced"),
    pytest.param("secure_delete", 1, id="deleted vault pages are overwritten"),
])
def test_every_connection_has_the_nodes_settings(tmp_path: Path, pragma: str,
                                                 expected: object) -> None:
    conn = connect(tmp_path / DB_FILE)
    try:
        assert conn.execute(f"PRAGMA {pragma}").fetchone()[0] == expected
    finally:
        conn.close()
