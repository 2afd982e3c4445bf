"""Signed checkpoints of the node's audit log.

A checkpoint pins the Merkle root of the first ``size`` entries in a C2SP signed note
signed by the node key. One is written at least every ``EVERY_ENTRIES`` entries or every
``EVERY_MS`` while entries arrive (checked at each append, inside the same transaction),
by the running node's timer for entries that arrived before a pause, and at export.
A node shows its counterparties its newest checkpoint (:meth:`Checkpointer.shown`), so an
exchange writes one only when one is due by the same rules.
The compact range stored with each checkpoint lets the next one extend the tree from
there instead of rehashing the whole log.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from node.audit import now_ms
from node.errors import BadInput
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
        # (size, time) of a checkpoint this process saw committed. Checkpoints are never
        # removed, so the newest one is at least this new: while this one says none is due,
        # none is, and the appends of a transaction need not look.
        self.seen_committed = (0, 0)

    def after_append(self, conn: sqlite3.Connection, size: int) -> None:
        last = latest(conn)
        last_size, last_time = (0, 0) if last is None else (last[0], last[1])
        if _due(size, last_size, last_time):
            self.write(conn, size)

    def for_transaction(self) -> TransactionCheckpoints:
        """``after_append`` for the appends of one write transaction."""
        return TransactionCheckpoints(self)

    def write(self, conn: sqlite3.Connection, size: int) -> str:
        """Write the checkpoint for the first ``size`` entries (inside a transaction)."""
        held = conn.execute("SELECT note FROM audit_checkpoints WHERE size = ?",
                            (size,)).fetchone()
        if held is not None:
            return str(held[0])
        frontier = frontier_at(conn, size)
        root = frontier.root()
        text = Checkpoint(origin_of(self._home.node_id), size, root).to_text()
        note = sign_note(text, self._home.node_id, self._home.keys.signing)
        conn.execute("INSERT INTO audit_checkpoints (size, root, note, frontier, time) "
                     "VALUES (?, ?, ?, ?, ?)", (size, root, note, frontier.to_bytes(), now_ms()))
        return note

    def newest_if_none_due(self, conn: sqlite3.Connection, size: int) -> str | None:
        """The newest checkpoint, unless none exists or one is due for the first ``size``
        entries (read-only: the answer for the caller that holds no write lock yet)."""
        last = latest(conn)
        if last is None or (size > last[0] and _due(size, last[0], last[1])):
            return None
        return last[2]

    def shown(self, conn: sqlite3.Connection, size: int) -> str:
        """The checkpoint this node shows a counterparty (inside a write transaction): the
        newest one, or the one due now for the first ``size`` entries.

        Counterparties cosign what they are shown, so the cosigned checkpoints trail the log
        by at most what a checkpoint may trail it: ``EVERY_ENTRIES`` or ``EVERY_MS``.
        """
        return self.newest_if_none_due(conn, size) or self.write(conn, size)

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


def _due(size: int, last_size: int, last_time: int) -> bool:
    return size - last_size >= EVERY_ENTRIES or now_ms() - last_time >= EVERY_MS


class TransactionCheckpoints:
    """Writes the checkpoints due during one write transaction, as its entries are appended.

    It looks up the newest checkpoint only once the one the process saw committed says
    one may be due, and keeps what it read until it writes one: under the write lock no
    one else adds one, and one added some other way inside this transaction only makes
    the kept one older, so a checkpoint comes early, never late. :meth:`committed` tells
    the process what this transaction leaves behind.
    """

    def __init__(self, checkpointer: Checkpointer) -> None:
        self._checkpointer = checkpointer
        self._kept: tuple[int, int] | None = None

    def __call__(self, conn: sqlite3.Connection, size: int) -> None:
        if not _due(size, *self._checkpointer.seen_committed):
            return
        if self._kept is None:
            row = conn.execute("SELECT size, time FROM audit_checkpoints "
                               "ORDER BY size DESC LIMIT 1").fetchone()
            self._kept = (0, 0) if row is None else (int(row[0]), int(row[1]))
        if _due(size, *self._kept):
            self._checkpointer.write(conn, size)
            self._kept = None

    def committed(self) -> None:
        """The transaction committed: the checkpoint it read is known to exist. (One it
        wrote is not kept; the next transaction that may be due reads it.)"""
        if self._kept is not None and self._kept[0] > self._checkpointer.seen_committed[0]:
            self._checkpointer.seen_committed = self._kept


def latest(conn: sqlite3.Connection) -> tuple[int, int, str] | None:
    row = conn.execute("SELECT size, time, note FROM audit_checkpoints "
                       "ORDER BY size DESC LIMIT 1").fetchone()
    return None if row is None else (int(row[0]), int(row[1]), str(row[2]))


def frontier_at(conn: sqlite3.Connection, size: int) -> CompactRange:
    """The compact range of the first ``size`` entries, without rereading the whole log.

    It starts from the range stored with the newest checkpoint at or below ``size`` and
    appends the leaf hashes of the entries after it: at a checkpoint's size, none.
    """
    row = conn.execute("SELECT frontier FROM audit_checkpoints WHERE size <= ? "
                       "ORDER BY size DESC LIMIT 1", (size,)).fetchone()
    frontier = CompactRange() if row is None else CompactRange.from_bytes(row[0])
    for (leaf,) in conn.execute("SELECT hash FROM audit_entries WHERE seq >= ? AND seq < ? "
                                "ORDER BY seq", (frontier.size, size)):
        frontier.append(leaf)
    if frontier.size != size:
        raise BadInput(f"the compact range of the first {size} audit entries needs that many "
                       f"entries; the log has {frontier.size}")
    return frontier


def unattested(home: Home) -> bool:
    """Entries exist that no checkpoint covers yet."""
    size = home.audit.size()
    last = latest(home.conn)
    return size > (0 if last is None else last[0])
