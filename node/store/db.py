"""The node's SQLite database: connection settings, transactions and migrations.

Every state change runs inside :func:`transaction` together with its audit entry, so a
crash leaves either both or neither. The schema changes only through the numbered SQL
files in ``node/store/migrations``; each one is applied once, in order, in its own
transaction, and recorded in ``schema_migrations``.
"""

from __future__ import annotations

import sqlite3
import time
from importlib import resources
from pathlib import Path

from node.errors import InvalidHome

BUSY_TIMEOUT_MS = 30_000
WAL_CHECKPOINT_PAGES = 10_000


def connect(path: Path) -> sqlite3.Connection:
    """Open the database in autocommit mode; transactions are explicit (BEGIN IMMEDIATE)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives any process crash; only power loss can drop the last commits.
    conn.execute("PRAGMA synchronous=NORMAL")
    # Copy the WAL back into the database every ~40 MB instead of every 4 MB: pages written
    # again and again (the audit log's tail, its indexes) are copied once per checkpoint,
    # so a commit costs about half as much. Recovery reads at most that much WAL.
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    conn.execute("PRAGMA foreign_keys=ON")
    # Deleted vault pages are overwritten, not left in the file.
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


class transaction:  # noqa: N801 — used as ``with transaction(conn):``
    """One write transaction: everything inside commits together or not at all.

    A class rather than a generator-based context manager: a node records most events one
    per transaction, and the generator's machinery cost about a tenth of each.
    """

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def begin(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def end(self, commit: bool) -> None:
        self.conn.execute("COMMIT" if commit else "ROLLBACK")

    def __enter__(self) -> sqlite3.Connection:
        return self.begin()

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.end(commit=kind is None)


def migration_names() -> list[str]:
    files = resources.files("node.store").joinpath("migrations")
    return sorted(f.name for f in files.iterdir() if f.name.endswith(".sql"))


def _migration_sql(name: str) -> str:
    return resources.files("node.store").joinpath("migrations", name).read_text("utf-8")


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """The migrations recorded in any database (none where it has no record of them)."""
    import sqlite_utils  # late: loading it costs every command a fifth of its start-up

    if not sqlite_utils.Database(conn)["schema_migrations"].exists():
        return []
    return _recorded(conn)


def _recorded(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations this database has not seen yet; returns their names."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                 "(name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)")
    done = set(_recorded(conn))  # the table exists: it was just made if it did not
    unknown = done - set(migration_names())
    if unknown:
        raise InvalidHome(f"the database was written by a newer trustspace (migration "
                          f"{sorted(unknown)[-1]}); upgrade trustspace to open it")
    applied = []
    for name in migration_names():
        if name in done:
            continue
        with transaction(conn):
            # another process may have applied it since we looked: check under the write lock
            if conn.execute("SELECT 1 FROM schema_migrations WHERE name = ?",
                            (name,)).fetchone():
                continue
            for statement in _statements(_migration_sql(name)):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                         (name, int(time.time())))
        applied.append(name)
    return applied


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (executescript would commit on its own)."""
    lines = [line for line in sql.splitlines(keepends=True) if not line.lstrip().startswith("--")]
    statements, current = [], ""
    for line in lines:
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
