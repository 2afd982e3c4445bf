"""Counterparty cosigning: after each negotiation, delivery and receipt, two nodes swap
their latest audit checkpoints and cosign each other's. After a negotiation the swap rides
on the consumer's countersignature instead of taking a call of its own.

The caller sends its latest checkpoint with a consistency proof from the size the
responder last cosigned; the responder verifies it against the newest checkpoint of the
caller it holds, cosigns it, keeps it, records ``checkpoint.cosigned`` and answers with
the cosigned checkpoint and its own latest one (with a proof from the size the caller
holds), which the caller verifies, cosigns, keeps and records in turn. A checkpoint that
contradicts one already held — another root at the same size, a smaller size, a proof
that fails — is refused and recorded as ``checkpoint.refused`` with both notes, which is
the evidence of a fork an auditor needs.

"Latest" is the newest checkpoint, or a new one when one is due (node/checkpoints.py:
every 1000 entries or every second), so a node does not sign a checkpoint per exchange;
a checkpoint shown again — byte for byte the note already held — is compared, not
verified, cosigned or recorded again.

Each side keeps, per held checkpoint, the proof it accepted it with, so an auditor given
only one side's export can still check the other side's checkpoints against each other.
The exchange is three steps on the wire messages — :func:`offer_checkpoints` (caller),
:func:`answer_checkpoints` (responder, in the stages of :class:`Answer`), :func:`take_answer`
(caller) — over domain steps that take and return plain values.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import grpc
from nacl.signing import VerifyKey

from connector.auth import current_caller
from connector.client import PeerClient
from connector.pb import trustspace_pb2 as pb
from connector.pb import trustspace_pb2_grpc as rpc
from node.audit import now_ms
from node.checkpoints import frontier_at, origin_of
from node.errors import BadNote, BadSignature, InvalidProof, TrustspaceError
from node.home import Change, Home
from node.merkle import HASH_SIZE, consistency_proof_from, verify_consistency
from node.peers import Peer
from node.signednote import (
    Checkpoint,
    add_signature,
    note_text,
    open_note,
    signed_as_before,
)

MAX_HELD_SIZE = 2**63 - 1
"""The largest tree size SQLite can store: a larger one (2^64-1 is valid C2SP) is refused."""


class AuditService(rpc.AuditServicer):
    """The responder's half of the exchange; the caller is the authenticated peer."""

    def __init__(self, home: Home) -> None:
        self.home = home

    def ExchangeCheckpoints(self, request: pb.CheckpointExchangeRequest,
                            context: grpc.ServicerContext) -> pb.CheckpointExchangeResponse:
        return answer_checkpoints(self.home, current_caller(), request)


def exchange_checkpoints(home: Home, client: PeerClient) -> None:
    """The caller's half: swap checkpoints with ``client.peer`` and cosign each other's."""
    offered = offer_checkpoints(home, client.peer)
    take_answer(home, client.peer, offered,
                client.call(client.audit.ExchangeCheckpoints, offered))


# --- the exchange in three steps: offer, answer, take -----------------------------------------
# A countersignature carries the same steps (connector/outbox_sender.py, provider.py), so a
# negotiation swaps checkpoints without a round trip of its own.


def offer_checkpoints(home: Home, peer: Peer) -> pb.CheckpointExchangeRequest:
    """The caller's offer: its newest checkpoint, with a proof from what ``peer`` cosigned.

    Offering the same checkpoint again writes nothing: only a checkpoint that is due, or
    one not offered to ``peer`` before, takes a write transaction.
    """
    cosigned_size = _cosigned_size(home, peer.node_id)
    known_size = _held_size(home, peer.node_id)
    note = home.checkpointer.newest_if_none_due(home.conn, home.audit.size())
    if note is None or not _offered(home, peer.node_id, size := _size_of(note)):
        with home.change() as change:
            note = _shown(home, change)
            size = _size_of(note)
            change.conn.execute("INSERT OR IGNORE INTO audit_cosignatures (peer_id, size, "
                                "offered_at) VALUES (?, ?, ?)", (peer.node_id, size, now_ms()))
    return pb.CheckpointExchangeRequest(
        checkpoint=note, known_size=known_size, cosigned_size=cosigned_size,
        consistency=proof_from(home, cosigned_size, size))


def answer_checkpoints(home: Home, caller: Peer,
                       offered: pb.CheckpointExchangeRequest) -> pb.CheckpointExchangeResponse:
    """The responder's answer: the caller's checkpoint cosigned, and its own latest one."""
    answer = Answer.open(home, caller, offered)
    with home.change() as change:
        answer.write(change)
    return answer.response()


class Answer:
    """The responder's answer in the three stages a write transaction splits it into.

    :meth:`write` runs inside a transaction the responder may share with the change the
    exchange rides on (a countersignature), so the two commit together and the
    responder's checkpoint covers both.
    """

    def __init__(self, home: Home, offered: pb.CheckpointExchangeRequest,
                 theirs: _PeerCheckpoint) -> None:
        self._home = home
        self._offered = offered
        self._theirs = theirs
        self._written: tuple[str, _Refusal | None, str, int] | None = None
        self._error: TrustspaceError | None = None

    @classmethod
    def open(cls, home: Home, caller: Peer, offered: pb.CheckpointExchangeRequest) -> Answer:
        """1. The caller's checkpoint verified against its card (before any write lock)."""
        return cls(home, offered, _PeerCheckpoint.open(
            home, caller, offered.checkpoint, offered.cosigned_size,
            [bytes(h) for h in offered.consistency]))

    def write(self, change: Change) -> None:
        """2. Inside ``change``: keep the caller's checkpoint, then checkpoint our own log.

        A checkpoint that cannot be kept writes nothing here and fails :meth:`response`,
        never the transaction it shares.
        """
        try:
            cosigned, refusal = self._theirs.keep(change)
        except TrustspaceError as e:
            self._error = e
            return
        note, size = "", 0
        if refusal is None:
            note = _shown(self._home, change)
            size = _size_of(note)
        self._written = cosigned, refusal, note, size

    def response(self) -> pb.CheckpointExchangeResponse:
        """3. After the commit: the answer, or the refusal recorded and raised."""
        if self._error is not None:
            raise self._error
        assert self._written is not None, "write() runs before response()"
        cosigned, refusal, note, size = self._written
        if refusal is not None:
            self._theirs.refuse(self._home, refusal)
        return pb.CheckpointExchangeResponse(
            cosigned=cosigned, checkpoint=note,
            consistency=proof_from(self._home, self._offered.known_size, size))


def take_answer(home: Home, peer: Peer, offered: pb.CheckpointExchangeRequest,
                answer: pb.CheckpointExchangeResponse,
                also: Callable[[Change], None] | None = None) -> None:
    """The caller keeps its cosigned checkpoint and verifies, cosigns and keeps the peer's.

    ``also`` commits with what is kept, and commits even when the answer is refused: it
    is the caller's own bookkeeping of the call (the outbox), not part of the exchange.
    """
    size = _size_of(offered.checkpoint)
    kept = _kept_cosignature(home, peer.node_id, size)
    try:
        if answer.cosigned != kept:  # one kept before was checked when it was kept
            _check_cosignature(peer, offered.checkpoint, answer.cosigned)
    except TrustspaceError:
        if also is not None:
            with home.change() as change:
                also(change)
        raise
    theirs: _PeerCheckpoint | None = None
    error: TrustspaceError | None = None
    refusal: _Refusal | None = None
    try:
        theirs = _PeerCheckpoint.open(home, peer, answer.checkpoint, offered.known_size,
                                      [bytes(h) for h in answer.consistency])
    except TrustspaceError as e:  # the peer's own checkpoint is refused; its cosignature stands
        error = e
    with home.change() as change:
        if answer.cosigned != kept:
            _keep_cosignature(change, peer, size, answer.cosigned)
        if theirs is not None:
            try:
                _, refusal = theirs.keep(change)
            except TrustspaceError as e:  # raised before it writes anything
                error = e
        if also is not None:
            also(change)
    if error is not None:
        raise error
    if theirs is not None and refusal is not None:
        theirs.refuse(home, refusal)


# --- the domain steps ------------------------------------------------------------------------


def _shown(home: Home, change: Change) -> str:
    """The checkpoint this node shows its counterparty (see Checkpointer.shown)."""
    size = change.audit.size()
    if size == 0:
        raise TrustspaceError("this node's audit log is empty, so it has no checkpoint")
    return home.checkpointer.shown(change.conn, size)


def _size_of(note: str) -> int:
    """The tree size of one of this node's own checkpoints."""
    return Checkpoint.parse(note_text(note)).size


def proof_from(home: Home, old_size: int, new_size: int) -> list[bytes]:
    """Our consistency proof from ``old_size`` to ``new_size`` (empty if there is none).

    Built from the compact range stored with the checkpoint at ``old_size``, so it reads
    only the entries added since, not the whole log.
    """
    if not 0 < old_size < new_size:
        return []
    return consistency_proof_from(frontier_at(home.conn, old_size), new_size,
                                  _StoredLeaves(home.conn, new_size))


def accept_checkpoint(home: Home, peer: Peer, note: str, from_size: int,
                      proof: Sequence[bytes]) -> str:
    """Verify ``peer``'s checkpoint against the newest one held, cosign and keep it.

    Returns the note with this node's cosignature. A checkpoint that contradicts a held
    one is recorded as ``checkpoint.refused`` and refused with :class:`InvalidProof`.
    """
    theirs = _PeerCheckpoint.open(home, peer, note, from_size, proof)
    with home.change() as change:
        cosigned, refusal = theirs.keep(change)
    if refusal is not None:
        theirs.refuse(home, refusal)
    return cosigned


@dataclass(frozen=True)
class _Refusal:
    reason: str
    held_note: str
    held_size: int


@dataclass(frozen=True)
class _PeerCheckpoint:
    """A peer's checkpoint whose signature verified, on its way to being kept or refused."""

    peer: Peer
    note: str
    checkpoint: Checkpoint
    cosigned: str  # the note with this node's cosignature
    from_size: int
    proof: Sequence[bytes]

    @classmethod
    def open(cls, home: Home, peer: Peer, note: str, from_size: int,
             proof: Sequence[bytes]) -> _PeerCheckpoint:
        """1. Signed by the peer, for the peer's log (checked before any write lock).

        A note this node verified, cosigned and kept before is compared, not verified
        and cosigned again: a peer shows the same checkpoint until its next one is due.
        """
        key = VerifyKey(peer.card.verify_key)
        cosigned = _held_copy(home, peer, note, key)
        if cosigned is None:
            text = open_note(note, {peer.node_id: key}).text
            cosigned = add_signature(note, home.node_id, home.keys.signing)
        else:
            text = note_text(note)
        checkpoint = Checkpoint.parse(text, origin=origin_of(peer.node_id))
        if checkpoint.size > MAX_HELD_SIZE:
            raise BadNote(f"the checkpoint of {peer.name} has tree size {checkpoint.size}; a "
                          f"size this node can hold is at most 2^63-1")
        return cls(peer, note, checkpoint, cosigned, from_size, proof)

    def keep(self, change: Change) -> tuple[str, _Refusal | None]:
        """2. Consistent with what is held — one root per size, never smaller, a valid
        proof — then kept and recorded; returns the cosigned note, or why not."""
        peer_id, checkpoint = self.peer.node_id, self.checkpoint
        held = _held(change.conn, peer_id, checkpoint.size, self.from_size)
        same = held.get(checkpoint.size)
        if same is not None and same[0] == checkpoint.root:
            return same[1], None  # held already: nothing new to record
        refusal = _contradiction(held, checkpoint, self.from_size, self.proof)
        if refusal is not None:
            return self.cosigned, _Refusal(*refusal)
        change.conn.execute(
            "INSERT INTO audit_peer_checkpoints (peer_id, size, root, note, received_at, "
            "proof_from, proof) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (peer_id, checkpoint.size, checkpoint.root, self.cosigned, now_ms(),
             self.from_size if held else 0, b"".join(self.proof) if held else b""))
        change.audit.append("checkpoint.cosigned", {
            "peer": peer_id, "size": checkpoint.size, "root": checkpoint.root.hex()})
        return self.cosigned, None

    def refuse(self, home: Home, refusal: _Refusal) -> NoReturn:
        """Record the contradiction with both notes, the evidence of a fork, and refuse."""
        home.record("checkpoint.refused", {
            "peer": self.peer.node_id, "reason": refusal.reason[:300],
            "size": self.checkpoint.size, "root": self.checkpoint.root.hex(),
            "held_size": refusal.held_size, "held": refusal.held_note, "offered": self.note,
            "proof_from": self.from_size, "proof": [h.hex() for h in self.proof]})
        error = InvalidProof(f"the checkpoint of {self.peer.name} contradicts one this node "
                             f"holds: {refusal.reason}")
        error.recorded = True
        raise error


def _check_cosignature(peer: Peer, note: str, cosigned: str) -> None:
    """``cosigned`` must be our checkpoint ``note`` signed by us both."""
    text = note_text(note)  # our own note, as this node just sent it
    theirs = open_note(cosigned, {peer.node_id: VerifyKey(peer.card.verify_key)})
    # Our signature lines must come back as sent, over the same text: compared, as they
    # are this node's own, not verified again.
    ours = set(note[len(text) + 1:].splitlines())
    if theirs.text != text or not ours <= set(cosigned[len(text) + 1:].splitlines()):
        raise BadSignature(f"{peer.name} returned a cosignature of another checkpoint than the "
                           "one this node sent")


def _held_copy(home: Home, peer: Peer, note: str, key: VerifyKey) -> str | None:
    """Our cosigned copy of ``note`` if this node kept this very note of ``peer`` before."""
    try:  # the text only locates the held copy; the comparison decides
        size = Checkpoint.parse(note_text(note), origin=origin_of(peer.node_id)).size
    except BadNote:
        return None
    if size > MAX_HELD_SIZE:
        return None
    row = home.conn.execute("SELECT note FROM audit_peer_checkpoints WHERE peer_id = ? AND "
                            "size = ?", (peer.node_id, size)).fetchone()
    if row is None or not signed_as_before(note, str(row[0]), peer.node_id, key):
        return None
    return str(row[0])


def _keep_cosignature(change: Change, peer: Peer, size: int, cosigned: str) -> None:
    change.conn.execute(
        "INSERT INTO audit_cosignatures (peer_id, size, note, offered_at, cosigned_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (peer_id, size) DO UPDATE SET "
        "note = excluded.note, cosigned_at = excluded.cosigned_at",
        (peer.node_id, size, cosigned, now_ms(), now_ms()))


# --- helpers -----------------------------------------------------------------------------------


def _contradiction(held: dict[int, tuple[bytes, str]], checkpoint: Checkpoint, from_size: int,
                   proof: Sequence[bytes]) -> tuple[str, str, int] | None:
    """Why ``checkpoint`` cannot extend the held ones: (reason, held note, held size)."""
    if not held:
        return None  # the first checkpoint of this peer: nothing to be consistent with
    newest = max(held)
    if checkpoint.size in held:
        return (f"it has root {checkpoint.root.hex()[:16]}… at size {checkpoint.size}, where "
                f"the held checkpoint has {held[checkpoint.size][0].hex()[:16]}…",
                held[checkpoint.size][1], checkpoint.size)
    if checkpoint.size < newest:
        return (f"it covers {checkpoint.size} entries, fewer than the {newest} of a checkpoint "
                "already held", held[newest][1], newest)
    if from_size not in held:
        raise InvalidProof(f"expected a consistency proof from one of your checkpoints this "
                           f"node holds (the newest has size {newest}); found one from size "
                           f"{from_size}")
    try:
        verify_consistency(from_size, checkpoint.size, held[from_size][0], checkpoint.root,
                           proof)
    except InvalidProof as e:
        return f"its consistency proof from size {from_size} fails: {e.message}", \
            held[from_size][1], from_size
    return None


def _held(conn: sqlite3.Connection, peer_id: str, size: int,
          from_size: int) -> dict[int, tuple[bytes, str]]:
    """The held checkpoints of ``peer_id`` that a new one is checked against.

    Only those at ``size`` and ``from_size`` and the newest: a peer's held checkpoints grow
    by one per exchange, and reading them all made every exchange slower than the last.
    """
    if not 0 <= from_size <= MAX_HELD_SIZE:  # no such size is held (nor fits SQLite)
        from_size = -1
    rows = conn.execute(  # three look-ups in the primary key (an OR here would scan them all)
        "SELECT size, root, note FROM audit_peer_checkpoints WHERE peer_id = ? AND size IN "
        "(?, ?, (SELECT max(size) FROM audit_peer_checkpoints WHERE peer_id = ?))",
        (peer_id, size, from_size, peer_id)).fetchall()
    return {int(held): (bytes(root), str(note)) for held, root, note in rows}


def _held_size(home: Home, peer_id: str) -> int:
    row = home.conn.execute("SELECT max(size) FROM audit_peer_checkpoints WHERE peer_id = ?",
                            (peer_id,)).fetchone()
    return int(row[0] or 0)


def _offered(home: Home, peer_id: str, size: int) -> bool:
    """Whether our checkpoint of ``size`` was offered to ``peer_id`` before."""
    return home.conn.execute("SELECT 1 FROM audit_cosignatures WHERE peer_id = ? AND size = ?",
                             (peer_id, size)).fetchone() is not None


def _kept_cosignature(home: Home, peer_id: str, size: int) -> str | None:
    """The cosignature ``peer_id`` returned of our checkpoint of ``size``, if one was kept."""
    row = home.conn.execute("SELECT note FROM audit_cosignatures WHERE peer_id = ? AND "
                            "size = ?", (peer_id, size)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def _cosigned_size(home: Home, peer_id: str) -> int:
    """The size of our newest checkpoint the peer cosigned (else the newest we offered it).

    If a cosigned checkpoint never came back (the answer was lost), the peer may hold our
    newest offered one, or none at all; the peer accepts a proof from any size it holds.
    """
    for condition in ("note IS NOT NULL", "1"):  # each a walk down the primary key's end
        row = home.conn.execute(f"SELECT size FROM audit_cosignatures WHERE peer_id = ? AND "
                                f"{condition} ORDER BY size DESC LIMIT 1", (peer_id,)).fetchone()
        if row is not None:
            return int(row[0])
    return 0


class _StoredLeaves:
    """The leaf hashes of this node's log as :func:`consistency_proof_from` reads them."""

    def __init__(self, conn: sqlite3.Connection, size: int) -> None:
        self._conn = conn
        self._size = size

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, span: slice, /) -> list[bytes]:
        start, stop, _ = span.indices(self._size)
        rows = self._conn.execute("SELECT hash FROM audit_entries WHERE seq >= ? AND seq < ? "
                                  "ORDER BY seq", (start, stop)).fetchall()
        return [bytes(h) for (h,) in rows if len(h) == HASH_SIZE]
