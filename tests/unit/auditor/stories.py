"""Agreement stories told by two crafted logs, one event at a time, as docs/audit-events.md
says each node writes them: a provider and a consumer that behave, unless a test tells one
of them to misbehave in one precise way.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from node.agreements import Agreement
from node.documents import SignedDoc
from policies.evaluate import AgreedTerms
from tests.unit.auditor.crafted import CraftedLog, at, exchange

AGREEMENT = "agr-0001"
FIELDS = (("company_id", "plain"), ("legal_person", "mask"), ("phone", "hash"))


class Story:
    """Times are seconds after the crafted epoch; every method writes what both nodes log."""

    def __init__(self, **terms: Any) -> None:
        self.provider = CraftedLog("qingdao-data", "data.qingdao", 7001)
        self.consumer = CraftedLog("bank", "finance.qingdao", 7002)
        values: dict[str, Any] = {"purpose": "credit-scoring", "app": "scorer",
                                  "fields": FIELDS, "max_deliveries": 2, "period": 3600,
                                  "retention": 600, "max_reads": 3, "valid_for": 86400,
                                  "onward_transfer": False}
        values.update(terms)
        self.terms = AgreedTerms(**values)
        self.agreement_id = AGREEMENT
        self.deliveries: list[str] = []
        self.reads: dict[str, int] = {}
        self.agreement_doc: SignedDoc | None = None
        p, c = self.provider, self.consumer
        p.append("node.initialised", {"node_id": p.node_id, "name": p.card.name,
                                      "domain": p.card.domain,
                                      "signing_key": p.card.signing_key}, at(0))
        c.append("node.initialised", {"node_id": c.node_id, "name": c.card.name,
                                      "domain": c.card.domain,
                                      "signing_key": c.card.signing_key}, at(0))
        for me, peer in ((p, c), (c, p)):
            me.append("peer.added", {"peer": peer.node_id, "name": peer.card.name,
                                     "domain": peer.card.domain, "address": peer.card.address,
                                     "signing_key": peer.card.signing_key}, at(1))
        c.append("app.added", {"app": "scorer"}, at(2))

    # --- negotiation -------------------------------------------------------------------------

    def agree(self, t: float = 10, *, consumer_signs: bool = True, concluded: bool = True,
              agreement_id: str = AGREEMENT) -> None:
        """Negotiate ``agreement_id``; later deliveries, reads etc. are under it.

        With ``concluded=False`` the provider proposes and the consumer never countersigns.
        """
        p, c = self.provider, self.consumer
        self.agreement_id = agreement_id
        request_id = "req-" + agreement_id
        agreement = Agreement(agreement_id, request_id, "credit", "companies", p.node_id,
                              c.node_id, p.card.domain, c.card.domain, self.terms, at(t),
                              at(t) + self.terms.valid_for * 1000)
        proposed = SignedDoc.create("agreement", agreement.to_body(), p.keys)
        signed = proposed.signed_by(c.keys) if consumer_signs else proposed
        self.agreement_doc = signed
        request = {"request": request_id, "offer": "credit", "provider": p.node_id,
                   "consumer": c.node_id, "purpose": "credit-scoring", "app": self.terms.app,
                   "hash": "ab" * 32}
        c.append("negotiation.requested", request, at(t))
        p.append("negotiation.requested", request, at(t))
        p.append("agreement.proposed", {"agreement": self.agreement_id, "role": "provider",
                                        "hash": proposed.hash, "document": proposed.to_dict()},
                 at(t))
        p.append("negotiation.decided", {"request": request_id, "outcome": "agreed",
                                         "reasons": [], "agreement": self.agreement_id}, at(t))
        if not concluded:
            return
        c.append("agreement.signed", {"agreement": self.agreement_id, "role": "consumer",
                                      "hash": signed.hash, "document": signed.to_dict()}, at(t))
        p.append("agreement.signed", {"agreement": self.agreement_id, "role": "provider",
                                      "hash": signed.hash, "document": signed.to_dict()},
                 at(t + 1))
        exchange(c, p, at(t + 1))

    # --- delivery ----------------------------------------------------------------------------

    def deliver(self, t: float, *, envelopes: int = 2, rows: int = 1000,
                fields: tuple[str, ...] | None = None, received: int | None = None,
                altered: int | None = None, extra_received: int = 0,
                completed: bool = True) -> str:
        """One delivery at ``t``; ``received`` envelopes arrive (all by default)."""
        p, c = self.provider, self.consumer
        number = sum(1 for d in self.deliveries if d.startswith(self.agreement_id)) + 1
        delivery = f"{self.agreement_id}-dlv-{len(self.deliveries) + 1:04d}"
        self.deliveries.append(delivery)
        names = list(fields or (name for name, _ in self.terms.fields))
        start = SignedDoc.create("delivery-start", {
            "delivery_id": delivery, "agreement_id": self.agreement_id, "number": number,
            "fields": names, "batch_rows": rows, "rows": rows * envelopes,
            "envelopes": envelopes, "started_at": at(t)}, p.keys)
        entry = {"agreement": self.agreement_id, "delivery": delivery, "number": number,
                 "document": start.to_dict()}
        p.append("delivery.started", entry, at(t))
        c.append("delivery.started", entry, at(t))
        arriving = envelopes if received is None else received
        prev, got_prev, last = "", "", ""
        for seq in range(envelopes + extra_received):
            digest = hashlib.sha256(f"{delivery}/{seq}".encode()).hexdigest()
            body = {"agreement": self.agreement_id, "delivery": delivery, "seq": seq, "rows": rows,
                    "fields": names, "digest": digest, "prev": prev}
            if seq < envelopes:
                p.append("envelope.sent", body, at(t))
                last = digest
            if seq < arriving + extra_received:
                got = digest if seq != altered else hashlib.sha256(b"other").hexdigest()
                c.append("envelope.received", {**body, "digest": got, "prev": got_prev},
                         at(t + 1))
                got_prev = got
            prev = digest
        end = SignedDoc.create("delivery-end", {
            "delivery_id": delivery, "agreement_id": self.agreement_id, "envelopes": envelopes,
            "rows": rows * envelopes, "last_digest": last, "completed_at": at(t + 1)}, p.keys)
        done = {"agreement": self.agreement_id, "delivery": delivery, "envelopes": envelopes,
                "rows": rows * envelopes, "last_digest": last, "document": end.to_dict()}
        p.append("delivery.completed", done, at(t + 1))
        if completed and arriving == envelopes and not extra_received:
            c.append("delivery.completed", {**done, "last_digest": got_prev}, at(t + 1))
        exchange(c, p, at(t + 1))
        return delivery

    def read(self, t: float, delivery: str, *, app: str | None = None) -> None:
        self.reads[delivery] = self.reads.get(delivery, 0) + 1
        self.consumer.append("data.read", {
            "agreement": self.agreement_id, "delivery": delivery, "app": app or self.terms.app,
            "rows": 2000, "fields": [name for name, _ in self.terms.fields],
            "read_number": self.reads[delivery]}, at(t))

    def destroy(self, t: float, deliveries: list[str], *, reason: str = "requested",
                receipt_reaches_provider: bool = True, digests_of: str | None = None) -> str:
        """The consumer destroys and signs a receipt; the provider records it at ``t + 1``."""
        p, c = self.provider, self.consumer
        listed: list[dict[str, Any]] = []
        for delivery in deliveries:
            source = digests_of or delivery
            digests = [hashlib.sha256(f"{source}/{seq}".encode()).hexdigest()
                       for seq in range(self._envelopes(delivery))]
            listed.append({"delivery_id": delivery, "rows": 1000 * len(digests),
                           "digests": digests})
        rows = sum(d["rows"] for d in listed)
        receipt = SignedDoc.create("destruction-receipt", {
            "receipt_id": f"rcp-{t}", "agreement_id": self.agreement_id, "provider": p.node_id,
            "consumer": c.node_id, "reason": reason, "deliveries": listed, "rows": rows,
            "destroyed_at": at(t)}, c.keys)
        c.append("data.destroyed", {"agreement": self.agreement_id, "deliveries": deliveries,
                                    "reason": reason, "rows": rows,
                                    "receipt_hash": receipt.hash, "receipt": receipt.to_dict()},
                 at(t))
        if receipt_reaches_provider:
            p.append("receipt.received", {"agreement": self.agreement_id,
                                          "receipt_hash": receipt.hash,
                                          "receipt": receipt.to_dict()}, at(t + 1))
            c.append("receipt.acknowledged", {"agreement": self.agreement_id,
                                              "receipt_hash": receipt.hash}, at(t + 1))
            exchange(c, p, at(t + 1))
        return receipt.hash

    def revoke(self, t: float, *, consumer_learns: bool = True) -> None:
        p, c = self.provider, self.consumer
        doc = SignedDoc.create("revocation", {
            "agreement_id": self.agreement_id, "provider": p.node_id, "consumer": c.node_id,
            "reason": "revoked by the provider", "revoked_at": at(t)}, p.keys)
        p.append("agreement.revoked", {"agreement": self.agreement_id,
                                       "reason": "revoked by the provider",
                                       "document": doc.to_dict()}, at(t))
        if consumer_learns:
            c.append("revocation.received", {"agreement": self.agreement_id,
                                             "document": doc.to_dict()}, at(t + 1))

    def finish(self, t: float) -> None:
        """Both nodes export at ``t`` (each export ends with its audit.exported entry)."""
        self.provider.append("audit.exported", {"format": 1}, at(t))
        self.consumer.append("audit.exported", {"format": 1}, at(t))

    def write(self, folder: Path) -> tuple[list[Path], list[Path]]:
        """(the two exports, the two cards) in ``folder``."""
        logs = [self.provider.write(folder / "provider.jsonl"),
                self.consumer.write(folder / "consumer.jsonl")]
        cards = [self.provider.write_card(folder / "provider.card"),
                 self.consumer.write_card(folder / "consumer.card")]
        return logs, cards

    def _envelopes(self, delivery: str) -> int:
        return sum(1 for e in self.consumer.entries
                   if b'"kind":"envelope.received"' in e and delivery.encode() in e)
