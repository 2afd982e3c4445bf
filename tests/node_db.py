"""Read-only looks into a node's database from tests: its tables, to show a refusal
changed nothing, and its audit log, to show what was recorded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from node.audit_format import AuditEntry
from node.home import DB_FILE

AUDIT_TABLES = ("audit_entries", "audit_checkpoints")


def read_db(path: Path) -> sqlite3.Connection:
    """A read-only connection to the database of the node at ``path``."""
    return sqlite3.connect(f"file:{path / DB_FILE}?mode=ro", uri=True, timeout=30)


def state(path: Path, volatile: tuple[str, ...] = AUDIT_TABLES) -> dict[str, list[str]]:
    """Every row of every table but ``volatile`` ones."""
    conn = read_db(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = "
                                             "'table' ORDER BY name") if r[0] not in volatile]
        return {t: sorted(repr(row) for row in conn.execute(f'SELECT * FROM "{t}"'))
                for t in tables}
    finally:
        conn.close()


def audit_size(path: Path) -> int:
    conn = read_db(path)
    try:
        return int(conn.execute("SELECT count(*) FROM audit_entries").fetchone()[0])
    finally:
        conn.close()


def audit_since(path: Path, seq: int) -> list[AuditEntry]:
    conn = read_db(path)
    try:
        return [AuditEntry.decode(row[0]) for row in conn.execute(
            "SELECT entry FROM audit_entries WHERE seq >= ? ORDER BY seq", (seq,))]
    finally:
        conn.close()
