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
                 after_append: Callable[[sqlite3.Connection, int], None] | None = None,
                 *, one_transaction: bool = False) -> None:
        self._conn = conn
        self._node_id = node_id
        self._after_append = after_append
        # A log bound to one transaction (Home.change; closed when it ends) keeps the seq
        # and hash of its last entry: holding the write lock, nothing else can append.
        self._one_transaction = one_transaction
        self._closed = False
        self._next: tuple[int, str] | None = None

    def append(self, kind: str, body: dict[str, Any]) -> AuditEntry:
        if self._closed or not self._conn.in_transaction:
            raise RuntimeError("audit entries are written only inside the change's transaction")
        known = self._next
        if known is None:
            last = self._conn.execute(
                "SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1").fetchone()
            known = (0, GENESIS_PREV) if last is None else (last[0] + 1, last[1].hex())
        seq, prev = known
        entry = AuditEntry(seq, now_ms(), self._node_id, kind, body, prev)
        data = entry.encode()
        leaf = leaf_hash(data)
        self._conn.execute(
            "INSERT INTO audit_entries (seq, time, kind, entry, hash) VALUES (?, ?, ?, ?, ?)",
            (seq, entry.time, kind, data, leaf))
        if self._one_transaction:  # the entry is in: whatever follows, it is the last one
            self._next = (seq + 1, leaf.hex())
        if self._after_append is not None:
            self._after_append(self._conn, seq + 1)
        crash_point("audit.appended")  # inside the transaction: nothing of it may survive
        return entry

    def close(self) -> None:
        """The transaction ended (committed or rolled back): refuse any further append."""
        self._closed = True
        self._next = None

    def size(self) -> int:
        row = self._conn.execute("SELECT max(seq) FROM audit_entries").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1
