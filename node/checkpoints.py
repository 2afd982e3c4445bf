"""Signed checkpoints of the node's audit log.

A checkpoint pins the Merkle root of the first ``size`` entries in a C2SP signed note
signed by the node key. One is written at least every ``EVERY_ENTRIES`` entries or every
``EVERY_MS`` while entries arrive (checked at each append, inside the same transaction),
by the running node's timer for entries that arrived before a pause, and at export.
The compact range stored with each checkpoint lets the next one extend the tree from
there instead of rehashing the whole log.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from node.audit import now_ms
from node.merkle import CompactRange
from node.signednote import Checkpoint, sign_note

if TYPE_CHECKING:
    from node.home import Home

EVERY_ENTRIES = 1000
EVERY_MS = 1000


def origin_of(node_id: str) -> str:
    return f"trustspace/{node_id}"


class Checkpointer:
    def __init__(self, home: Home) -> None:
        self._home = home

    def after_append(self, conn: sqlite3.Connection, size: int) -> None:
        last = latest(conn)
        last_size, last_time = (0, 0) if last is None else (last[0], last[1])
        if size - last_size >= EVERY_ENTRIES or now_ms() - last_time >= EVERY_MS:
            self.write(conn, size)

    def write(self, conn: sqlite3.Connection, size: int) -> str:
        """Write the checkpoint for the first ``size`` entries (inside a transaction)."""
        row = conn.execute("SELECT size, frontier FROM audit_checkpoints WHERE size <= ? "
                           "ORDER BY size DESC LIMIT 1", (size,)).fetchone()
        start, frontier = (0, CompactRange()) if row is None else \
            (row[0], CompactRange.from_bytes(row[1]))
        if row is not None and start == size:
            note = conn.execute("SELECT note FROM audit_checkpoints WHERE size = ?",
                                (size,)).fetchone()[0]
            return str(note)
        for (leaf,) in conn.execute("SELECT hash FROM audit_entries WHERE seq >= ? AND seq < ? "
                                    "ORDER BY seq", (start, size)):
            frontier.append(leaf)
        root = frontier.root()
        text = Checkpoint(origin_of(self._home.node_id), size, root).to_text()
        note = sign_note(text, self._home.node_id, self._home.keys.signing)
        conn.execute("INSERT INTO audit_checkpoints (size, root, note, frontier, time) "
                     "VALUES (?, ?, ?, ?, ?)", (size, root, note, frontier.to_bytes(), now_ms()))
        return note

    def checkpoint_if_unattested(self) -> str | None:
        """The running node's timer: cover entries that arrived before a pause."""
        return self.checkpoint_now() if unattested(self._home) else None

    def checkpoint_now(self) -> str | None:
        """Cover every entry so far by a checkpoint; returns the newest note."""
        with self._home.change() as change:
            size = self._home.audit.size()
            if size == 0:
                return None
            return self.write(change.conn, size)


def latest(conn: sqlite3.Connection) -> tuple[int, int, str] | None:
    row = conn.execute("SELECT size, time, note FROM audit_checkpoints "
                       "ORDER BY size DESC LIMIT 1").fetchone()
    return None if row is None else (int(row[0]), int(row[1]), str(row[2]))


def unattested(home: Home) -> bool:
    """Entries exist that no checkpoint covers yet."""
    size = home.audit.size()
    last = latest(home.conn)
    return size > (0 if last is None else last[0])
