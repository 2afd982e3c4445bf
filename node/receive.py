"""The consumer's side of a delivery: verify every frame before anything of it is stored.

:class:`Receiver` follows one delivery: the provider-signed start, the envelopes in
sequence, the provider-signed end. Each envelope is verified (``node/envelopes.py``) and
then stored re-encrypted in the vault together with its audit entry, one transaction per
envelope, so a cut-off fetch resumes at the first missing envelope. A frame that fails
verification aborts the delivery and removes everything of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.agreements import StoredAgreement
from node.audit import now_ms
from node.delivery import envelope_entry
from node.documents import SignedDoc
from node.envelopes import FIRST_PREV, EnvelopeHeader, open_envelope
from node.errors import ContractRefused, EnvelopeTampered, InvalidId, TrustspaceError
from node.home import Home
from node.ids import check_id
from node.peers import Peer
from node.vault import delete_delivery, ensure_key, store_batch


@dataclass(frozen=True)
class Resume:
    delivery_id: str
    from_seq: int


def resume_point(home: Home, agreement_id: str) -> Resume | None:
    """The consumer's unfinished delivery of this agreement, if any, and where to go on."""
    row = home.conn.execute(
        "SELECT delivery_id, envelopes FROM deliveries WHERE agreement_id = ? AND role = "
        "'consumer' AND completed_at IS NULL AND destroyed_at IS NULL ORDER BY started_at DESC "
        "LIMIT 1", (agreement_id,)).fetchone()
    return None if row is None else Resume(row[0], row[1])


class Receiver:
    def __init__(self, home: Home, stored: StoredAgreement, provider: Peer) -> None:
        self.home = home
        self.stored = stored
        self.provider = provider
        self.delivery_id = ""
        self.expected_envelopes = 0
        self.expected_rows = 0
        self.next_seq = 0
        self.prev = FIRST_PREV
        self.rows = 0
        self.completed = False

    # ---- frames ------------------------------------------------------------------------
    def on_start(self, doc: SignedDoc, resume: Resume | None) -> None:
        body = self._verified(doc, "delivery-start")
        agreement = self.stored.agreement
        if body.get("fields") != list(agreement.terms.field_names):
            raise EnvelopeTampered("the delivery announces other fields than the agreement's")
        for key in ("number", "rows", "envelopes", "batch_rows", "started_at"):
            value = body.get(key)
            if type(value) is not int or not 0 <= value < 2**63:
                raise EnvelopeTampered(f"the delivery start's {key} is not a count")
        try:
            self.delivery_id = check_id(body.get("delivery_id"), what="the delivery id")
        except InvalidId as e:
            raise EnvelopeTampered(f"the delivery start's id is malformed: {e}") from None
        self.expected_envelopes = body["envelopes"]
        self.expected_rows = body["rows"]
        if resume is not None:
            if resume.delivery_id != self.delivery_id:
                raise EnvelopeTampered("the provider resumed a different delivery")
            self.next_seq = resume.from_seq
            row = self.home.conn.execute(
                "SELECT rows, last_digest FROM deliveries WHERE delivery_id = ?",
                (self.delivery_id,)).fetchone()
            self.rows, self.prev = int(row[0]), str(row[1])
            return
        with self.home.change() as change:
            seen = change.conn.execute("SELECT destroy_reason FROM deliveries WHERE "
                                       "delivery_id = ?", (self.delivery_id,)).fetchone()
            if seen is not None and seen[0] == "aborted":
                raise ContractRefused(f"delivery {self.delivery_id} failed verification "
                                      "before and is not accepted again")
            if seen is not None:
                raise EnvelopeTampered(f"delivery {self.delivery_id} was already received")
            change.conn.execute(
                "INSERT INTO deliveries (delivery_id, agreement_id, role, number, "
                "start_document, started_at) VALUES (?, ?, 'consumer', ?, ?, ?)",
                (self.delivery_id, agreement.agreement_id, body["number"], doc.to_json(),
                 now_ms()))
            change.audit.append("delivery.started", {
                "agreement": agreement.agreement_id, "delivery": self.delivery_id,
                "number": body["number"], "document": doc.to_dict()})

    def on_envelope(self, header_bytes: bytes, signature: bytes, body: bytes) -> int:
        agreement = self.stored.agreement
        if not self.delivery_id:
            raise EnvelopeTampered("an envelope arrived before the delivery started")
        expect = EnvelopeHeader(agreement.agreement_id, self.delivery_id, self.next_seq, 0,
                                agreement.terms.field_names, "", self.prev)
        header, plaintext, rows = open_envelope(
            header_bytes, signature, body, provider_key=self.provider.card.verify_key,
            box_key=self.home.keys.box, expect=expect)
        if self.rows + header.rows > self.expected_rows:
            raise EnvelopeTampered("the delivery holds more rows than it announced")
        with self.home.change() as change:
            # destroyed meanwhile (retention, revocation): nothing more of it may be stored
            held = change.conn.execute(
                "SELECT d.destroyed_at IS NULL AND a.state != 'revoked' FROM deliveries d "
                "JOIN agreements a USING (agreement_id) WHERE d.delivery_id = ?",
                (self.delivery_id,)).fetchone()
            if not held or not held[0]:
                raise ContractRefused(f"delivery {self.delivery_id} was destroyed while it was "
                                      "received; nothing more of it is stored")
            box = ensure_key(change.conn, self.home, agreement.agreement_id)
            store_batch(change.conn, box, agreement.agreement_id, self.delivery_id, header.seq,
                        header.rows, plaintext)
            change.conn.execute(
                "INSERT INTO envelopes (delivery_id, seq, rows, digest) VALUES (?, ?, ?, ?)",
                (self.delivery_id, header.seq, header.rows, header.digest))
            change.conn.execute(
                "UPDATE deliveries SET envelopes = envelopes + 1, rows = rows + ?, "
                "last_digest = ? WHERE delivery_id = ?",
                (header.rows, header.digest, self.delivery_id))
            change.audit.append("envelope.received", envelope_entry(header))
        self.next_seq += 1
        self.prev = header.digest
        self.rows += header.rows
        del rows
        return header.rows

    def on_end(self, doc: SignedDoc) -> None:
        body = self._verified(doc, "delivery-end")
        if body.get("delivery_id") != self.delivery_id \
                or body.get("envelopes") != self.next_seq \
                or body.get("envelopes") != self.expected_envelopes \
                or body.get("rows") != self.rows or body.get("last_digest") != self.prev:
            raise EnvelopeTampered("the delivery's end does not match the envelopes received")
        with self.home.change() as change:
            change.conn.execute("UPDATE deliveries SET end_document = ?, completed_at = ? "
                                "WHERE delivery_id = ?",
                                (doc.to_json(), now_ms(), self.delivery_id))
            change.audit.append("delivery.completed", {
                "agreement": self.stored.agreement_id, "delivery": self.delivery_id,
                "envelopes": self.next_seq, "rows": self.rows, "last_digest": self.prev,
                "document": doc.to_dict()})
        self.completed = True

    def abort(self, error: TrustspaceError) -> None:
        """A frame failed verification: nothing of this delivery stays."""
        if not self.delivery_id:
            self.home.record("delivery.aborted", {
                "agreement": self.stored.agreement_id, "delivery": None, "reason": error.code,
                "message": error.message[:300]})
            return
        with self.home.change() as change:
            delete_delivery(change.conn, self.delivery_id)
            change.conn.execute("DELETE FROM envelopes WHERE delivery_id = ?",
                                (self.delivery_id,))
            change.conn.execute("UPDATE deliveries SET destroyed_at = ?, destroy_reason = "
                                "'aborted', envelopes = 0, rows = 0 WHERE delivery_id = ?",
                                (now_ms(), self.delivery_id))
            change.audit.append("delivery.aborted", {
                "agreement": self.stored.agreement_id, "delivery": self.delivery_id,
                "reason": error.code, "message": error.message[:300]})

    def _verified(self, doc: SignedDoc, doc_type: str) -> dict[str, Any]:
        if doc.type != doc_type:
            raise EnvelopeTampered(f"expected a {doc_type} document, found {doc.type}")
        doc.verify(self.provider.node_id, self.provider.card.verify_key, what=f"the {doc_type}")
        body = doc.body()
        if body.get("agreement_id") != self.stored.agreement_id:
            raise EnvelopeTampered(f"the {doc_type} belongs to another agreement")
        return body
