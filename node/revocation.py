"""Revocation: the provider stops an agreement; the consumer destroys what it holds.

The provider's revocation is a signed document, stored with the state change and queued
for the consumer in one transaction; the consumer, once it learns of it (notification,
or its next contact), records it and destroys the agreement's data with a receipt.
"""

from __future__ import annotations

from node.agreements import StoredAgreement, load_agreement
from node.audit import now_ms
from node.destruction import destroy_held, is_time
from node.documents import SignedDoc
from node.errors import ContractRefused, MalformedMessage
from node.faults import crash_point
from node.home import Home
from node.outbox import enqueue
from node.peers import Peer


def revoke(home: Home, agreement_id: str, reason: str = "revoked by the provider") -> SignedDoc:
    stored = load_agreement(home, agreement_id, role="provider")
    if stored.state == "revoked":
        raise ContractRefused(f"agreement {agreement_id} is already revoked")
    revoked_at = now_ms()
    doc = SignedDoc.create("revocation", {
        "agreement_id": agreement_id, "provider": home.node_id, "consumer": stored.peer_id,
        "reason": reason[:300], "revoked_at": revoked_at}, home.keys)
    with home.change() as change:
        change.conn.execute("UPDATE agreements SET state = 'revoked', revoked_at = ?, "
                            "revocation = ? WHERE agreement_id = ?",
                            (revoked_at, doc.to_json(), agreement_id))
        change.audit.append("agreement.revoked", {"agreement": agreement_id,
                                                  "reason": reason[:300],
                                                  "document": doc.to_dict()})
        enqueue(change, stored.peer_id, "revocation", doc)
    return doc


def accept_revocation(home: Home, provider: Peer, doc: SignedDoc) -> StoredAgreement:
    """Consumer: verify the provider's revocation, record it, destroy the agreement's data."""
    if doc.type != "revocation":
        raise MalformedMessage(f"expected a revocation, found {doc.type}")
    doc.verify(provider.node_id, provider.card.verify_key, what="the revocation")
    body = doc.body()
    agreement_id = body.get("agreement_id")
    if not isinstance(agreement_id, str) or not is_time(body.get("revoked_at")):
        raise MalformedMessage("the revocation lacks its agreement or time")
    stored = load_agreement(home, agreement_id, role="consumer")
    if stored.peer_id != provider.node_id or body.get("consumer") != home.node_id:
        raise ContractRefused(f"agreement {agreement_id} is not with {provider.name}")
    if stored.state != "revoked":
        with home.change() as change:
            change.conn.execute("UPDATE agreements SET state = 'revoked', revoked_at = ?, "
                                "revocation = ? WHERE agreement_id = ?",
                                (body["revoked_at"], doc.to_json(), agreement_id))
            change.audit.append("revocation.received", {"agreement": agreement_id,
                                                        "document": doc.to_dict()})
        crash_point("revocation.recorded")
    if stored.state != "revoked" or holds_data(home, agreement_id):
        destroy_held(home, agreement_id, "revoked")
    return load_agreement(home, agreement_id)


def holds_data(home: Home, agreement_id: str) -> bool:
    """The consumer still has a vault key or undestroyed deliveries for the agreement."""
    return bool(home.conn.execute(
        "SELECT EXISTS (SELECT 1 FROM vault_keys WHERE agreement_id = ?1) OR EXISTS (SELECT 1 "
        "FROM deliveries WHERE agreement_id = ?1 AND role = 'consumer' AND destroyed_at IS NULL)",
        (agreement_id,)).fetchone()[0] == 1)
