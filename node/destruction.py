"""Destruction and its proof, both sides.

Consumer: :func:`destroy` deletes the rows of the chosen deliveries (and, for the whole
agreement, its vault key), writes a destruction receipt signed by the consumer naming
every destroyed delivery with its envelope digests, audits it and queues the receipt for
the provider — all in one transaction. Provider: :func:`accept_receipt` verifies and keeps
the receipt and answers with a signed acknowledgement; :func:`overdue` lists deliveries
whose receipt has not arrived by their deadline.
"""

from __future__ import annotations

from typing import Any

from node.agreements import Agreement, load_agreement
from node.audit import now_ms
from node.documents import SignedDoc
from node.errors import ContractRefused, InvalidId, MalformedMessage
from node.home import Home
from node.ids import check_id, new_id
from node.outbox import enqueue
from node.peers import Peer
from node.vault import delete_delivery, shred

REASONS = ("requested", "retention", "max_reads", "revoked")
OVERDUE_GRACE_MS = 60_000


def destroy(home: Home, agreement_id: str, reason: str,
            deliveries: list[str] | None = None) -> SignedDoc:
    """Destroy deliveries of an agreement (all of them and its key when ``None``)."""
    receipt = destroy_held(home, agreement_id, reason, deliveries)
    if receipt is None:
        raise ContractRefused(f"agreement {agreement_id} holds no data to destroy")
    return receipt


def destroy_held(home: Home, agreement_id: str, reason: str,
                 deliveries: list[str] | None = None) -> SignedDoc | None:
    """:func:`destroy`, or ``None`` when nothing of it is held (any more).

    The node's own triggers use this: two of them can decide on the same state (the timed
    work, and a last read or a revocation notice); the check is part of the destruction's
    transaction, so the second finds nothing and writes no second, empty receipt.
    """
    assert reason in REASONS
    stored = load_agreement(home, agreement_id, role="consumer")
    with home.change() as change:
        conn = change.conn
        query = ("SELECT delivery_id, rows FROM deliveries WHERE agreement_id = ? AND role = "
                 "'consumer' AND destroyed_at IS NULL")
        targets = [(d, r) for d, r in conn.execute(query, (agreement_id,))
                   if deliveries is None or d in deliveries]
        has_key = conn.execute("SELECT 1 FROM vault_keys WHERE agreement_id = ?",
                               (agreement_id,)).fetchone() is not None
        if not targets and (deliveries is not None or not has_key):
            return None
        destroyed_at = now_ms()
        listed = []
        for delivery_id, rows in targets:
            digests = [d for (d,) in conn.execute(
                "SELECT digest FROM envelopes WHERE delivery_id = ? ORDER BY seq",
                (delivery_id,))]
            listed.append({"delivery_id": delivery_id, "rows": rows, "digests": digests})
            delete_delivery(conn, delivery_id)
            conn.execute("UPDATE deliveries SET destroyed_at = ?, destroy_reason = ? "
                         "WHERE delivery_id = ?", (destroyed_at, reason, delivery_id))
        if deliveries is None:
            shred(conn, agreement_id)
        total = sum(int(d["rows"]) for d in listed)
        receipt = SignedDoc.create("destruction-receipt", {
            "receipt_id": new_id("rcp"), "agreement_id": agreement_id,
            "provider": stored.agreement.provider, "consumer": home.node_id,
            "reason": reason, "deliveries": listed, "rows": total,
            "destroyed_at": destroyed_at}, home.keys)
        conn.execute("INSERT INTO receipts (receipt_id, agreement_id, role, document, "
                     "created_at) VALUES (?, ?, 'consumer', ?, ?)",
                     (receipt.body()["receipt_id"], agreement_id, receipt.to_json(),
                      destroyed_at))
        change.audit.append("data.destroyed", {
            "agreement": agreement_id, "deliveries": [d["delivery_id"] for d in listed],
            "reason": reason, "rows": total, "receipt_hash": receipt.hash,
            "receipt": receipt.to_dict()})
        enqueue(change, stored.peer_id, "receipt", receipt)
    return receipt


def acknowledge_receipt_sent(home: Home, receipt: SignedDoc, ack: SignedDoc,
                             provider: Peer) -> None:
    """Consumer: the provider's signed acknowledgement arrived; remember it."""
    ack.verify(provider.node_id, provider.card.verify_key, what="the receipt acknowledgement")
    body = receipt.body()
    if ack.body().get("receipt_hash") != receipt.hash:
        raise MalformedMessage("the acknowledgement is for another receipt")
    with home.change() as change:
        first = change.conn.execute(
            "UPDATE receipts SET acknowledged_at = ? WHERE receipt_id = ? AND acknowledged_at "
            "IS NULL", (now_ms(), body["receipt_id"])).rowcount
        if first:  # a receipt resent after a crash is acknowledged again: audit it once
            change.audit.append("receipt.acknowledged", {
                "agreement": body["agreement_id"], "receipt_hash": receipt.hash})


def accept_receipt(home: Home, caller: Peer, receipt: SignedDoc) -> SignedDoc:
    """Provider: verify a destruction receipt from the agreement's consumer, keep it, ack it."""
    # 1. a receipt signed by the caller
    if receipt.type != "destruction-receipt":
        raise MalformedMessage(f"expected a destruction receipt, found {receipt.type}")
    receipt.verify(caller.node_id, caller.card.verify_key, what="the destruction receipt")
    body = _receipt_body(receipt)
    # 2. for an agreement of ours with the caller as consumer
    stored = load_agreement(home, body["agreement_id"], role="provider")
    if stored.peer_id != caller.node_id or body["consumer"] != caller.node_id \
            or body["provider"] != home.node_id:
        raise ContractRefused(f"the receipt is for agreement {body['agreement_id']}, which is "
                              f"not with {caller.name}")
    ack = SignedDoc.create("receipt-ack", {"receipt_id": body["receipt_id"],
                                           "receipt_hash": receipt.hash,
                                           "received_at": now_ms()}, home.keys)
    with home.change() as change:
        added = change.conn.execute(
            "INSERT OR IGNORE INTO receipts (receipt_id, agreement_id, role, document, "
            "created_at, acknowledged_at) VALUES (?, ?, 'provider', ?, ?, ?)",
            (body["receipt_id"], body["agreement_id"], receipt.to_json(), now_ms(),
             now_ms())).rowcount
        if added:
            for delivery in body["deliveries"]:
                change.conn.execute(
                    "UPDATE deliveries SET destroyed_at = ?, destroy_reason = ? WHERE "
                    "delivery_id = ? AND agreement_id = ? AND role = 'provider' "
                    "AND destroyed_at IS NULL",
                    (body["destroyed_at"], body["reason"], delivery["delivery_id"],
                     body["agreement_id"]))
            change.audit.append("receipt.received", {
                "agreement": body["agreement_id"], "receipt_hash": receipt.hash,
                "receipt": receipt.to_dict()})
    return ack


def overdue(home: Home, agreement: Agreement, revoked_at: int | None,
            now: int | None = None) -> list[str]:
    """Provider: deliveries whose destruction receipt is late (deadline + grace passed)."""
    now = now_ms() if now is None else now
    retention_ms = agreement.terms.retention * 1000
    late = []
    for delivery_id, completed_at in home.conn.execute(
            "SELECT delivery_id, completed_at FROM deliveries WHERE agreement_id = ? AND role = "
            "'provider' AND completed_at IS NOT NULL AND destroyed_at IS NULL",
            (agreement.agreement_id,)):
        deadline = completed_at + retention_ms
        if revoked_at is not None:
            deadline = min(deadline, revoked_at)
        if now > deadline + OVERDUE_GRACE_MS:
            late.append(str(delivery_id))
    return late


def _receipt_body(receipt: SignedDoc) -> dict[str, Any]:
    body = receipt.body()
    keys = {"receipt_id", "agreement_id", "provider", "consumer", "reason", "deliveries",
            "rows", "destroyed_at"}
    if set(body) != keys or not isinstance(body["deliveries"], list) or not all(
            isinstance(d, dict) and isinstance(d.get("delivery_id"), str)
            for d in body["deliveries"]) or body["reason"] not in REASONS \
            or not is_time(body["destroyed_at"]):
        raise MalformedMessage("the destruction receipt does not have the receipt fields")
    try:
        for key in ("receipt_id", "agreement_id"):
            check_id(body[key], what=f"the receipt's {key}")
        for delivery in body["deliveries"]:
            check_id(delivery["delivery_id"], what="a receipt's delivery id")
    except InvalidId as e:  # from a peer, a bad id is a malformed document
        raise MalformedMessage(e.message) from None
    return body


def is_time(value: object) -> bool:
    """Unix milliseconds that SQLite can hold (a peer may send any integer)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
