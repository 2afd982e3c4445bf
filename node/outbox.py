"""Messages that must reach a peer: written with the change that causes them, sent later.

A countersignature, a destruction receipt or a revocation notice is queued in the same
transaction as the state change it announces, so a crash can never lose it; the sender
(``connector/outbox_sender.py``) retries with backoff until the peer acknowledges.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.audit import now_ms
from node.documents import SignedDoc
from node.home import Change, Home

MAX_BACKOFF_MS = 60_000


@dataclass(frozen=True)
class Message:
    id: int
    peer_id: str
    kind: str
    doc: SignedDoc
    attempts: int


def enqueue(change: Change, peer_id: str, kind: str, doc: SignedDoc) -> None:
    change.conn.execute(
        "INSERT INTO outbox (peer_id, kind, document, created_at, next_attempt_at) "
        "VALUES (?, ?, ?, ?, ?)", (peer_id, kind, doc.to_json(), now_ms(), 0))


def due(home: Home, peer_id: str | None = None, *, force: bool = False) -> list[Message]:
    """Undelivered messages whose next attempt is due (all of them with ``force``)."""
    query = "SELECT id, peer_id, kind, document, attempts FROM outbox WHERE delivered_at IS NULL"
    params: list[object] = []
    if not force:
        query += " AND next_attempt_at <= ?"
        params.append(now_ms())
    if peer_id is not None:
        query += " AND peer_id = ?"
        params.append(peer_id)
    rows = home.conn.execute(query + " ORDER BY id", params).fetchall()
    return [Message(r[0], r[1], r[2], SignedDoc.from_json(r[3]), r[4]) for r in rows]


def mark_delivered(change: Change, message_id: int) -> None:
    change.conn.execute("UPDATE outbox SET delivered_at = ? WHERE id = ?",
                        (now_ms(), message_id))


def mark_failed(home: Home, message: Message, error: str) -> None:
    backoff = min(MAX_BACKOFF_MS, 500 * 2 ** min(message.attempts, 10))
    with home.change() as change:
        change.conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
            "WHERE id = ?", (now_ms() + backoff, error[:300], message.id))


def undelivered_count(home: Home) -> int:
    return int(home.conn.execute(
        "SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0])
