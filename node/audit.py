"""The node's append-only, hash-chained audit log.

``AuditLog.append`` must run inside the same transaction as the state change it records
(:func:`node.store.db.transaction`), so the change and its entry commit together. Each
entry names the hash of the one before; signed checkpoints (``node/checkpoints.py``) pin
the Merkle root of the whole log at intervals.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from node.audit_format import GENESIS_PREV, AuditEntry, leaf_hash
from node.faults import crash_point


def now_ms() -> int:
    return int(time.time() * 1000)


class AuditLog:
    """Appends entries for one node; call only inside an open write transaction."""

    def __init__(self, conn: sqlite3.Connection, node_id: str,
                 after_append: Callable[[sqlite3.Connection, int], None] | None = None) -> None:
        self._conn = conn
        self._node_id = node_id
        self._after_append = after_append

    def append(self, kind: str, body: dict[str, Any]) -> AuditEntry:
        if not self._conn.in_transaction:
            raise RuntimeError("audit entries are written only inside the change's transaction")
        last = self._conn.execute(
            "SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (0, GENESIS_PREV) if last is None else (last[0] + 1, last[1].hex())
        entry = AuditEntry(seq, now_ms(), self._node_id, kind, body, prev)
        data = entry.encode()
        self._conn.execute(
            "INSERT INTO audit_entries (seq, time, kind, entry, hash) VALUES (?, ?, ?, ?, ?)",
            (seq, entry.time, kind, data, leaf_hash(data)))
        if self._after_append is not None:
            self._after_append(self._conn, seq + 1)
        crash_point("audit.appended")  # inside the transaction: nothing of it may survive
        return entry

    def size(self) -> int:
        row = self._conn.execute("SELECT max(seq) FROM audit_entries").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1
