"""Contract negotiation, both sides, without any transport.

Consumer: :func:`make_request` signs a request; :func:`accept_agreement` verifies the
provider-signed agreement against that request, countersigns it and queues the
countersignature for the provider. Provider: :func:`receive_request` evaluates a request
with the pure policy evaluator and answers agreed, pending (manual approval) or rejected;
:func:`approve` / :func:`reject` decide pending ones; :func:`accept_countersignature`
activates the agreement. Each step stores its state and its audit entry in one transaction.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from node.agreements import Agreement, StoredAgreement, load_agreement, verify_agreement
from node.audit import now_ms
from node.datasets import get_dataset
from node.documents import SignedDoc
from node.errors import (
    BadSignature,
    ContractRefused,
    DomainRefused,
    MalformedMessage,
    NotFound,
    PolicyRefused,
)
from node.home import Change, Home
from node.ids import check_id, new_id
from node.offers import Offer, get_offer
from node.outbox import enqueue
from node.peers import Peer, peer_by_id
from policies.evaluate import AgreedTerms, Decision, Reason, Request, Requester, evaluate

REQUEST_KEYS = {"request_id", "offer_id", "provider", "consumer", "purpose", "app", "fields",
                "max_deliveries", "period", "retention", "max_reads", "valid_for",
                "onward_transfer", "created_at"}


@dataclass(frozen=True)
class Outcome:
    """What the provider answers to a request."""

    request_id: str
    state: str  # pending, agreed, rejected
    agreement: SignedDoc | None
    reasons: tuple[dict[str, str], ...]
    decision: SignedDoc | None = None  # the provider's signed decision, once decided

    @property
    def reason_text(self) -> str:
        return "; ".join(r["message"] for r in self.reasons)


# ---- consumer side ---------------------------------------------------------------------
def make_request(home: Home, provider: Peer, offer_id: str, request: Request) -> SignedDoc:
    check_id(offer_id, what="offer id")
    body = {"request_id": new_id("req"), "offer_id": offer_id, "provider": provider.node_id,
            "consumer": home.node_id, "purpose": request.purpose, "app": request.app,
            "fields": list(request.fields) if request.fields is not None else None,
            "max_deliveries": request.max_deliveries, "period": request.period,
            "retention": request.retention, "max_reads": request.max_reads,
            "valid_for": request.valid_for, "onward_transfer": request.onward_transfer,
            "created_at": now_ms()}
    doc = SignedDoc.create("request", body, home.keys)
    with home.change() as change:
        change.audit.append("negotiation.requested", _request_entry(body, doc))
        change.conn.execute(
            "INSERT INTO requests (request_id, role, peer_id, offer_id, document, state, "
            "created_at) VALUES (?, 'consumer', ?, ?, ?, 'pending', ?)",
            (body["request_id"], provider.node_id, offer_id, doc.to_json(), body["created_at"]))
    return doc


def accept_agreement(home: Home, provider: Peer, request_id: str, doc: SignedDoc,
                     decision: SignedDoc | None = None) -> StoredAgreement:
    """Verify the provider's agreement against our request, countersign and keep it."""
    request = _request_body(home, request_id, "consumer")
    agreement = verify_agreement(doc, provider.card, home.card(), countersigned=False)
    terms = agreement.terms
    asked = request["fields"]
    if agreement.request_id != request_id or agreement.offer_id != request["offer_id"] \
            or terms.purpose != request["purpose"] or terms.app != request["app"] \
            or (asked is not None and set(terms.field_names) - set(asked)):
        raise ContractRefused(f"the agreement from {provider.name} does not match request "
                              f"{request_id}")
    for key in ("max_deliveries", "retention", "max_reads", "valid_for"):
        if request[key] is not None and getattr(terms, key) > request[key]:
            raise ContractRefused(f"the agreement from {provider.name} grants more {key} than "
                                  "was asked")
    # a shorter period is a higher frequency; onward transfer is granted only when asked
    if request["period"] is not None and terms.period < request["period"]:
        raise ContractRefused(f"the agreement from {provider.name} has a shorter period than "
                              "was asked")
    if terms.onward_transfer and not request["onward_transfer"]:
        raise ContractRefused(f"the agreement from {provider.name} allows an onward transfer "
                              "that was not asked")
    decided = _decision_entry(home, provider, request_id, decision, "agreed")
    decided["agreement"] = agreement.agreement_id
    signed = doc.signed_by(home.keys)
    with home.change() as change:
        state = _state(change, request_id)
        if state == "agreed":  # a repeated answer: already accepted
            return load_agreement(home, agreement.agreement_id)
        if state != "pending":  # e.g. the running node learnt it never arrived: it is over
            raise ContractRefused(f"request {request_id} is already {state}; the agreement "
                                  f"from {provider.name} comes too late")
        change.conn.execute("UPDATE requests SET state = 'agreed', agreement_id = ?, "
                            "decided_at = ? WHERE request_id = ?",
                            (agreement.agreement_id, now_ms(), request_id))
        _store_agreement(change, agreement, signed, "consumer", provider.node_id, "active", None)
        change.audit.append("negotiation.decided", decided)
        change.audit.append("agreement.signed", _agreement_entry(agreement, signed, "consumer"))
        enqueue(change, provider.node_id, "countersign", signed)
    return StoredAgreement(agreement, signed, "consumer", provider.node_id, "active",
                           revoked_at=None, revocation=None, hash_key=None)


def record_rejection(home: Home, request_id: str, reasons: tuple[dict[str, str], ...]) -> None:
    """The provider refused the request without a signed decision (e.g. the call itself)."""
    _record_rejection(home, request_id, {
        "request": request_id, "outcome": "rejected", "reasons": list(reasons),
        "agreement": None})


def record_decided_rejection(home: Home, provider: Peer, request_id: str,
                             decision: SignedDoc) -> tuple[dict[str, str], ...]:
    """The provider's signed decision rejects our request: keep it with its reasons."""
    entry = _decision_entry(home, provider, request_id, decision, "rejected")
    _record_rejection(home, request_id, entry)
    return tuple(entry["reasons"])


def _record_rejection(home: Home, request_id: str, entry: dict[str, Any]) -> None:
    with home.change() as change:
        if _state(change, request_id) != "pending":
            return
        change.conn.execute("UPDATE requests SET state = 'rejected', reasons = ?, decided_at = ? "
                            "WHERE request_id = ?",
                            (json.dumps(entry["reasons"]), now_ms(), request_id))
        change.audit.append("negotiation.decided", entry)


def _decision_entry(home: Home, provider: Peer, request_id: str, decision: SignedDoc | None,
                    outcome: str) -> dict[str, Any]:
    """The audit entry of a decision, after checking the provider's signed decision, in order.

    1. it is a decision signed by the provider; 2. it is about this request between these
    two nodes; 3. its outcome is the one the provider answered; 4. its reasons are a list of
    ``{term, message}``. Without a decision (an older provider) the entry has no reasons.
    """
    entry: dict[str, Any] = {"request": request_id, "outcome": outcome, "reasons": [],
                             "agreement": None}
    if decision is None:
        return entry
    if decision.type != "decision":
        raise MalformedMessage(f"expected a decision document, found {decision.type}")
    decision.verify(provider.node_id, provider.card.verify_key, what="the decision")
    body = decision.body()
    if (body.get("request_id"), body.get("provider"), body.get("consumer")) != (
            request_id, provider.node_id, home.node_id):
        raise ContractRefused(f"the decision from {provider.name} is about another request")
    if body.get("outcome") != outcome:
        raise ContractRefused(f"the decision from {provider.name} says {body.get('outcome')!r}"
                              f" but the answer was {outcome!r}")
    reasons = body.get("reasons")
    if not isinstance(reasons, list) or not all(
            isinstance(r, dict) and set(r) == {"term", "message"}
            and all(isinstance(v, str) for v in r.values()) for r in reasons):
        raise MalformedMessage("the decision's reasons must be a list of terms and messages")
    entry.update(reasons=reasons, decision_hash=decision.hash, decision=decision.to_dict())
    return entry


def pending_requests(home: Home, role: str) -> list[dict[str, Any]]:
    return requests_in_state(home, role, "pending")


def requests_in_state(home: Home, role: str, state: str) -> list[dict[str, Any]]:
    """This node's requests (as ``role``) in ``state``, oldest first, with their reasons."""
    rows = home.conn.execute(
        "SELECT request_id, peer_id, offer_id, document, created_at, reasons FROM requests "
        "WHERE role = ? AND state = ? ORDER BY created_at", (role, state)).fetchall()
    result = []
    for request_id, peer_id, offer_id, document, created_at, reasons in rows:
        body = SignedDoc.from_json(document).body()
        result.append({"request_id": request_id, "peer_id": peer_id, "offer_id": offer_id,
                       "purpose": body["purpose"], "app": body["app"],
                       "created_at": created_at, "reasons": json.loads(reasons)})
    return result


# ---- provider side ---------------------------------------------------------------------
def receive_request(home: Home, caller: Peer, doc: SignedDoc) -> Outcome:
    """Evaluate a consumer's signed request and answer it."""
    # 1. the document is a request signed by the caller, addressed to this node
    if doc.type != "request":
        raise MalformedMessage(f"expected a request document, found {doc.type}")
    doc.verify(caller.node_id, caller.card.verify_key, what="the request")
    body = doc.body()
    request = _parse_request(body)
    if body["consumer"] != caller.node_id or body["provider"] != home.node_id:
        raise ContractRefused("the request names other nodes than the caller and this node")
    request_id = check_id(body["request_id"], what="request id")
    # 2. a request seen before gets the same answer (the consumer may retry after a crash)
    existing = home.conn.execute("SELECT peer_id FROM requests WHERE request_id = ?",
                                 (request_id,)).fetchone()
    if existing is not None:
        if existing[0] != caller.node_id:
            raise ContractRefused(f"request {request_id} belongs to another node")
        return request_status(home, caller, request_id)
    # 3. an offer this peer may see
    try:
        offer = _visible_offer(home, caller, body["offer_id"])
    except DomainRefused as e:
        with home.change() as change:  # refused, but the request and the refusal are logged
            change.audit.append("negotiation.requested", _request_entry(body, doc))
            change.audit.append("negotiation.decided", {
                "request": request_id, "outcome": "rejected", "agreement": None,
                "reasons": [{"term": "consumer_domain", "message": e.message}]})
        e.recorded = True
        raise
    dataset = get_dataset(home, offer.dataset_id)
    # 4. the policy decides
    decision = evaluate(offer.terms, request, Requester(caller.node_id, caller.card.domain),
                        dataset.classification)
    reasons = tuple({"term": r.term, "message": r.message} for r in decision.reasons)
    manual = offer.terms.approval == "manual"
    state = "rejected" if not decision.granted else "pending" if manual else "agreed"
    with home.change() as change:
        change.audit.append("negotiation.requested", _request_entry(body, doc))
        now = now_ms()
        change.conn.execute(
            "INSERT INTO requests (request_id, role, peer_id, offer_id, document, state, "
            "reasons, created_at, decided_at) VALUES (?, 'provider', ?, ?, ?, ?, ?, ?, ?)",
            (request_id, caller.node_id, offer.offer_id, doc.to_json(), state,
             json.dumps(reasons), now, None if state == "pending" else now))
        agreement = None
        if state == "agreed":
            assert decision.agreed is not None
            agreement = _propose(change, home, caller, request_id, offer, decision.agreed)
        agreement_id = agreement.body()["agreement_id"] if agreement else None
        change.audit.append("negotiation.decided", {
            "request": request_id, "outcome": state, "reasons": list(reasons),
            "agreement": agreement_id})
    return _answer(home, request_id, consumer=caller.node_id, state=state, reasons=reasons,
                   agreement_id=agreement_id, agreement=agreement,
                   decided_at=None if state == "pending" else now)


def request_status(home: Home, caller: Peer, request_id: str) -> Outcome:
    """The answer to a request, with the provider's signed decision once it is decided."""
    row = home.conn.execute(
        "SELECT peer_id, state, reasons, agreement_id, decided_at FROM requests "
        "WHERE request_id = ? AND role = 'provider'", (request_id,)).fetchone()
    if row is None or row[0] != caller.node_id:
        raise NotFound(f"no request {request_id!r} from {caller.name}")
    peer_id, state, reasons, agreement_id, decided_at = row
    agreement = load_agreement(home, agreement_id).doc if agreement_id else None
    return _answer(home, request_id, consumer=peer_id, state=state,
                   reasons=tuple(json.loads(reasons)), agreement_id=agreement_id,
                   agreement=agreement, decided_at=decided_at)


def _answer(home: Home, request_id: str, *, consumer: str, state: str,
            reasons: tuple[dict[str, str], ...], agreement_id: str | None,
            agreement: SignedDoc | None, decided_at: int | None) -> Outcome:
    """The answer to a request as stored: the decision is rebuilt each time, and Ed25519
    signatures are deterministic, so every answer carries the very same document."""
    decision = None
    if state != "pending":
        decision = SignedDoc.create("decision", {
            "request_id": request_id, "provider": home.node_id, "consumer": consumer,
            "outcome": state, "reasons": list(reasons), "agreement_id": agreement_id,
            "decided_at": decided_at}, home.keys)
    return Outcome(request_id, state, agreement, reasons, decision)


def approve(home: Home, request_id: str) -> SignedDoc:
    body, peer_id = _pending_provider_request(home, request_id)
    caller = peer_by_id(home, peer_id)
    offer = get_offer(home, body["offer_id"])
    dataset = get_dataset(home, offer.dataset_id)
    # the offer or the peer may have changed while the request waited: evaluate again
    decision: Decision = evaluate(offer.terms, _parse_request(body),
                                  Requester(caller.node_id, caller.card.domain),
                                  dataset.classification)
    if not decision.granted:
        reject(home, request_id, "; ".join(r.message for r in decision.reasons),
               reasons=decision.reasons)
        raise decision.refusal()
    assert decision.agreed is not None
    with home.change() as change:
        if _state(change, request_id) != "pending":
            raise ContractRefused(f"request {request_id} was decided meanwhile")
        agreement = _propose(change, home, caller, request_id, offer, decision.agreed)
        change.conn.execute("UPDATE requests SET state = 'agreed', decided_at = ? "
                            "WHERE request_id = ?", (now_ms(), request_id))
        change.audit.append("negotiation.decided", {
            "request": request_id, "outcome": "agreed", "reasons": [], "approved": True,
            "agreement": agreement.body()["agreement_id"]})
    return agreement


def reject(home: Home, request_id: str, reason: str,
           reasons: tuple[Reason, ...] | None = None) -> None:
    if not reason.strip():
        raise PolicyRefused("a rejection needs a reason for the consumer")
    _pending_provider_request(home, request_id)
    listed = [{"term": r.term, "message": r.message} for r in reasons] if reasons else \
        [{"term": "operator", "message": reason.strip()[:500]}]
    with home.change() as change:
        if _state(change, request_id) != "pending":
            raise ContractRefused(f"request {request_id} was decided meanwhile")
        change.conn.execute("UPDATE requests SET state = 'rejected', reasons = ?, decided_at = ? "
                            "WHERE request_id = ?", (json.dumps(listed), now_ms(), request_id))
        change.audit.append("negotiation.decided", {
            "request": request_id, "outcome": "rejected", "reasons": listed,
            "agreement": None})


def accept_countersignature(home: Home, caller: Peer, doc: SignedDoc,
                            also: Callable[[Change], None] | None = None) -> StoredAgreement:
    """Activate the agreement ``caller`` countersigned.

    ``also`` runs in the same transaction (a retried countersignature, which changes
    nothing, still gets one): the checkpoint exchange that rides on the countersignature
    commits with it, and the provider's checkpoint covers the activation.
    """
    agreement_id = Agreement.from_doc(doc).agreement_id
    stored = load_agreement(home, agreement_id, role="provider")
    if stored.peer_id != caller.node_id:
        raise ContractRefused(f"agreement {agreement_id} is not with {caller.name}")
    if doc.payload != stored.doc.payload:
        raise ContractRefused(f"the countersigned agreement {agreement_id} differs from the "
                              "one this node signed")
    # The payload is the one this node signed, so its own signature must be the very bytes
    # it stored (Ed25519 is deterministic): compared, not verified again.
    what = f"agreement {agreement_id}"
    own = doc.signatures.get(home.node_id)
    if own is None:
        raise BadSignature(f"{what} (provider) is not signed by {home.node_id}")
    if not hmac.compare_digest(own, stored.doc.signatures[home.node_id]):
        raise BadSignature(f"the signature on {what} (provider) does not verify")
    doc.verify(caller.node_id, caller.card.verify_key, what=f"{what} (consumer)")
    agreement = stored.agreement
    if stored.state != "awaiting_countersignature":  # a retried countersignature
        if also is not None:
            with home.change() as change:
                also(change)
        return stored
    with home.change() as change:
        activated = change.conn.execute(
            "UPDATE agreements SET document = ?, state = 'active' WHERE agreement_id = ? AND "
            "state = 'awaiting_countersignature'", (doc.to_json(), agreement_id)).rowcount
        if activated:
            change.audit.append("agreement.signed", _agreement_entry(agreement, doc, "provider"))
        if also is not None:
            also(change)
    if not activated:  # revoked or countersigned by another call meanwhile
        return load_agreement(home, agreement_id)
    return replace(stored, doc=doc, state="active")


# ---- helpers -----------------------------------------------------------------------------
def _propose(change: Change, home: Home, caller: Peer, request_id: str, offer: Offer,
             agreed: AgreedTerms) -> SignedDoc:
    created = now_ms()
    agreement = Agreement(new_id("agr"), request_id, offer.offer_id, offer.dataset_id,
                          home.node_id, caller.node_id, home.config.domain, caller.card.domain,
                          agreed, created, created + agreed.valid_for * 1000)
    doc = SignedDoc.create("agreement", agreement.to_body(), home.keys)
    _store_agreement(change, agreement, doc, "provider", caller.node_id,
                     "awaiting_countersignature", os.urandom(32))
    change.conn.execute("UPDATE requests SET agreement_id = ? WHERE request_id = ?",
                        (agreement.agreement_id, request_id))
    change.audit.append("agreement.proposed", _agreement_entry(agreement, doc, "provider"))
    return doc


def _store_agreement(change: Change, agreement: Agreement, doc: SignedDoc, role: str,
                     peer_id: str, state: str, hash_key: bytes | None) -> None:
    change.conn.execute(
        "INSERT INTO agreements (agreement_id, role, peer_id, offer_id, app, document, state, "
        "created_at, expires_at, hash_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (agreement.agreement_id, role, peer_id, agreement.offer_id, agreement.terms.app,
         doc.to_json(), state, agreement.created_at, agreement.expires_at, hash_key))


def _agreement_entry(agreement: Agreement, doc: SignedDoc, role: str) -> dict[str, Any]:
    return {"agreement": agreement.agreement_id, "role": role, "hash": doc.hash,
            "document": doc.to_dict()}


def _request_entry(body: dict[str, Any], doc: SignedDoc) -> dict[str, Any]:
    return {"request": body["request_id"], "offer": body["offer_id"],
            "provider": body["provider"], "consumer": body["consumer"],
            "purpose": body["purpose"], "app": body["app"], "hash": doc.hash}


def _parse_request(body: dict[str, Any]) -> Request:
    if set(body) != REQUEST_KEYS:
        raise MalformedMessage("the request does not have exactly the request fields")
    fields = body["fields"]
    if fields is not None and (not isinstance(fields, list)
                               or not all(isinstance(f, str) for f in fields)):
        raise MalformedMessage("the request's fields must be a list of names")
    for key in ("request_id", "offer_id", "provider", "consumer", "purpose", "app"):
        if not isinstance(body[key], str):
            raise MalformedMessage(f"the request's {key} must be text")
    for key in ("max_deliveries", "period", "retention", "max_reads", "valid_for"):
        value = body[key]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise MalformedMessage(f"the request's {key} must be a whole number")
    if not isinstance(body["onward_transfer"], bool):
        raise MalformedMessage("the request's onward_transfer must be true or false")
    return Request(purpose=body["purpose"], app=body["app"],
                   fields=tuple(fields) if fields is not None else None,
                   max_deliveries=body["max_deliveries"], period=body["period"],
                   retention=body["retention"], max_reads=body["max_reads"],
                   valid_for=body["valid_for"], onward_transfer=body["onward_transfer"])


def _visible_offer(home: Home, caller: Peer, offer_id: object) -> Offer:
    if not isinstance(offer_id, str):
        raise MalformedMessage("the request's offer id must be text")
    try:
        offer = get_offer(home, offer_id)
    except NotFound:
        offer = None
    if offer is None or caller.card.domain not in offer.terms.consumer_domains:
        # the same answer whether the offer is missing or hidden: its existence is not leaked
        raise DomainRefused(f"no offer {offer_id!r} is open to domain {caller.card.domain}")
    return offer


def _request_body(home: Home, request_id: str, role: str) -> dict[str, Any]:
    row = home.conn.execute("SELECT document FROM requests WHERE request_id = ? AND role = ?",
                            (request_id, role)).fetchone()
    if row is None:
        raise NotFound(f"no request {request_id!r} on this node")
    return SignedDoc.from_json(row[0]).body()


def _pending_provider_request(home: Home, request_id: str) -> tuple[dict[str, Any], str]:
    row = home.conn.execute("SELECT document, peer_id, state FROM requests WHERE "
                            "request_id = ? AND role = 'provider'", (request_id,)).fetchone()
    if row is None:
        raise NotFound(f"no request {request_id!r} waits on this node")
    if row[2] != "pending":
        raise ContractRefused(f"request {request_id} was already {row[2]}")
    return SignedDoc.from_json(row[0]).body(), str(row[1])


def _state(change: Change, request_id: str) -> str | None:
    row = change.conn.execute("SELECT state FROM requests WHERE request_id = ?",
                              (request_id,)).fetchone()
    return None if row is None else str(row[0])
