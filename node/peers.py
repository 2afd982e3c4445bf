"""Trusted peers: nodes whose signed cards the operator added.

A peer is found by name (as operators type it) or by node id (as calls carry it). A
removed peer stays in the table, so its history in the audit log stays verifiable, but
its calls are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from node.errors import AlreadyExists, BadInput, UnknownPeer
from node.home import Home
from node.identity import NodeCard, SignedCard


@dataclass(frozen=True)
class Peer:
    card: NodeCard
    signed_card: str
    added_at: int
    removed_at: int | None

    @property
    def node_id(self) -> str:
        return self.card.node_id

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def trusted(self) -> bool:
        return self.removed_at is None


def add_peer(home: Home, signed: SignedCard) -> Peer:
    card = signed.card
    if card.node_id == home.node_id:
        raise BadInput("that is this node's own card; add the card of another node")
    existing = _find(home, "node_id", card.node_id)
    by_name = _find(home, "name", card.name)
    if by_name is not None and by_name.node_id != card.node_id:
        raise AlreadyExists(f"a different node named {card.name!r} is already a peer; "
                            "remove it first")
    if existing is not None and existing.trusted and existing.card == card:
        raise AlreadyExists(f"{card.name} is already a trusted peer")
    if existing is not None and existing.trusted and card.issued_at < existing.card.issued_at:
        raise BadInput(f"this card of {card.name} is older than the one already trusted")
    with home.change() as change:
        now = change.audit.append("peer.added", {
            "peer": card.node_id, "name": card.name, "domain": card.domain,
            "address": card.address, "signing_key": card.signing_key}).time
        change.conn.execute(
            "INSERT INTO peers (node_id, name, domain, address, card, added_at, removed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (node_id) DO UPDATE SET "
            "name = excluded.name, domain = excluded.domain, address = excluded.address, "
            "card = excluded.card, added_at = excluded.added_at, removed_at = NULL",
            (card.node_id, card.name, card.domain, card.address, signed.to_json(), now))
    peer = _find(home, "node_id", card.node_id)
    assert peer is not None
    return peer


def remove_peer(home: Home, name: str) -> Peer:
    peer = peer_by_name(home, name)
    with home.change() as change:
        now = change.audit.append("peer.removed", {"peer": peer.node_id, "name": peer.name}).time
        change.conn.execute("UPDATE peers SET removed_at = ? WHERE node_id = ?",
                            (now, peer.node_id))
    removed = _find(home, "node_id", peer.node_id)
    assert removed is not None
    return removed


def list_peers(home: Home) -> list[Peer]:
    rows = home.conn.execute(
        "SELECT card, added_at, removed_at FROM peers ORDER BY name").fetchall()
    return [_peer(row) for row in rows]


def peer_by_name(home: Home, name: str) -> Peer:
    peer = _find(home, "name", name)
    if peer is None or not peer.trusted:
        raise UnknownPeer(f"{name!r} is not a trusted peer; add its card with "
                          "'trustspace peer add'")
    return peer


def peer_by_id(home: Home, node_id: str, *, include_removed: bool = False) -> Peer:
    peer = _find(home, "node_id", node_id)
    if peer is None or (not peer.trusted and not include_removed):
        raise UnknownPeer(f"node {node_id} is not a trusted peer of this node")
    return peer


def _find(home: Home, column: str, value: str) -> Peer | None:
    assert column in ("name", "node_id")
    row = home.conn.execute(
        f"SELECT card, added_at, removed_at FROM peers WHERE {column} = ?", (value,)).fetchone()
    return None if row is None else _peer(row)


def _peer(row: tuple[str, int, int | None]) -> Peer:
    signed = _verified_card(row[0])
    return Peer(signed.card, row[0], row[1], row[2])


@lru_cache(maxsize=1024)
def _verified_card(text: str) -> SignedCard:
    """The card stored as ``text``, parsed and its signature verified once per process.

    Every authenticated call looks its caller up; keyed by the whole stored text (which
    names the node), a re-added peer's new card is a new key, and whether the peer is
    removed still comes from the row on every call. A card that fails is not cached.
    """
    return SignedCard.from_json(text)
