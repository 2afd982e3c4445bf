"""Signed documents and agreements: what verifies, and every way a tampered one is refused.

The agreement tests run the real negotiation functions on two real homes in ``tmp_path``
(no server): the consumer asks, the provider answers with an agreement it signed, and the
consumer's :func:`node.negotiation.accept_agreement` must take the genuine one and refuse
any other, storing nothing of it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node.agreements import load_agreement, verify_agreement
from node.canonical import canonical_json
from node.config import Config
from node.datasets import add_dataset
from node.documents import SignedDoc
from node.errors import BadSignature, ContractRefused, MalformedMessage, TrustspaceError
from node.home import Home
from node.identity import NodeKeys
from node.negotiation import (
    accept_agreement,
    accept_countersignature,
    make_request,
    receive_request,
    record_rejection,
    request_status,
)
from node.offers import add_offer
from node.peers import Peer, add_peer, peer_by_id
from policies.evaluate import Request
from tests.conftest import write_companies, write_policy

KEYS = NodeKeys.generate()
OTHER = NodeKeys.generate()
BODY = {"receipt_id": "rcp-1", "rows": 3, "deliveries": [{"delivery_id": "dlv-1"}]}
DAY = 86_400


def flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1:]


# ---- SignedDoc ------------------------------------------------------------------------------
def test_a_signed_document_survives_its_json_form_and_keeps_its_hash() -> None:
    doc = SignedDoc.create("destruction-receipt", BODY, KEYS)
    again = SignedDoc.from_json(doc.to_json())
    assert again == doc
    assert again.hash == doc.hash
    assert again.body() == BODY
    again.verify(KEYS.node_id, KEYS.verify_key, what="the receipt")
    assert SignedDoc("revocation", doc.payload).hash != doc.hash  # the type is part of it


def _signed() -> SignedDoc:
    return SignedDoc.create("destruction-receipt", BODY, KEYS)


SIGNATURE_REFUSALS: dict[str, tuple[Callable[[], SignedDoc], str]] = {
    "the payload changed after signing": (
        lambda: SignedDoc("destruction-receipt", canonical_json({**BODY, "rows": 4}),
                          _signed().signatures), "does not verify"),
    "the signature flipped": (
        lambda: SignedDoc("destruction-receipt", _signed().payload,
                          {KEYS.node_id: flip(_signed().signatures[KEYS.node_id])}),
        "does not verify"),
    "another node's signature under this node's id": (
        lambda: SignedDoc("destruction-receipt", _signed().payload,
                          {KEYS.node_id: OTHER.sign("destruction-receipt", _signed().payload)}),
        "does not verify"),
    "signed as another type of document": (
        lambda: SignedDoc("destruction-receipt", _signed().payload,
                          {KEYS.node_id: KEYS.sign("revocation", _signed().payload)}),
        "does not verify"),
    "not signed by the node at all": (
        lambda: SignedDoc.create("destruction-receipt", BODY, OTHER), "is not signed by"),
}


@pytest.mark.parametrize("make, message", SIGNATURE_REFUSALS.values(),
                         ids=SIGNATURE_REFUSALS.keys())
def test_a_document_that_was_not_signed_as_it_is_is_refused(
        make: Callable[[], SignedDoc], message: str) -> None:
    with pytest.raises(BadSignature, match=message):
        make().verify(KEYS.node_id, KEYS.verify_key, what="the receipt")


def _form(**change: Any) -> dict[str, Any]:
    form = _signed().to_dict()
    form.update(change)
    return {k: v for k, v in form.items() if v is not None}


MALFORMED: dict[str, tuple[Any, str]] = {
    "not an object": ([], "type, payload and signatures"),
    "without signatures": (_form(signatures=None), "type, payload and signatures"),
    "with an extra key": ({**_form(), "note": "x"}, "type, payload and signatures"),
    "a payload that is not text": (_form(payload=3), "type, payload and signatures"),
    "a signature that is not base64": (_form(signatures={KEYS.node_id: "%%"}), "base64"),
    "a signature of the wrong size": (_form(signatures={KEYS.node_id: "AAAA"}), "64 bytes"),
    "a signature that is not text": (_form(signatures={KEYS.node_id: 7}), "not base64 text"),
    "an unknown document type": (_form(type="invoice"), "unknown document type"),
}


@pytest.mark.parametrize("form, message", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_document_is_refused_naming_the_problem(form: Any, message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        SignedDoc.from_dict(form)


@pytest.mark.parametrize("payload", [b'{"b":1, "a":2}', b'{"a":1.5}', b"[1]", b"\xff"],
                         ids=["not canonical", "a float", "not an object", "not UTF-8"])
def test_a_payload_in_another_spelling_is_refused(payload: bytes) -> None:
    with pytest.raises(MalformedMessage):
        SignedDoc("destruction-receipt", payload).body()


# ---- two homes and an agreement -------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    """A provider and a consumer home that trust each other; the provider offers data."""

    provider: Home
    consumer: Home

    @property
    def provider_peer(self) -> Peer:  # the provider, as the consumer knows it
        return peer_by_id(self.consumer, self.provider.node_id)

    @property
    def consumer_peer(self) -> Peer:  # the consumer, as the provider knows it
        return peer_by_id(self.provider, self.consumer.node_id)


def make_pair(base: Path, rows: int = 20, retention: str = "7d") -> Pair:
    provider = Home.init(base / "prov", Config(name="prov", domain="data.qingdao",
                                               listen="127.0.0.1:1", envelope_rows=1000))
    consumer = Home.init(base / "cons", Config(name="cons", domain="finance.qingdao",
                                               listen="127.0.0.1:2"))
    add_peer(provider, consumer.signed_card())
    add_peer(consumer, provider.signed_card())
    add_dataset(provider, "companies", write_companies(base / "companies.csv", rows),
                "internal")
    add_offer(provider, "offer", "companies",
              write_policy(base / "policy.toml", retention=retention))
    return Pair(provider, consumer)


def propose(pair: Pair, request: Request) -> tuple[str, SignedDoc]:
    """The consumer asks; returns its request id and the provider-signed agreement."""
    doc = make_request(pair.consumer, pair.provider_peer, "offer", request)
    outcome = receive_request(pair.provider, pair.consumer_peer, doc)
    assert outcome.state == "agreed" and outcome.agreement is not None, outcome.reasons
    return outcome.request_id, outcome.agreement


def agree(pair: Pair, request: Request | None = None) -> str:
    """A countersigned agreement, active on both sides; returns its id."""
    request_id, doc = propose(pair, request or Request(purpose="credit-scoring", app="scoring"))
    stored = accept_agreement(pair.consumer, pair.provider_peer, request_id, doc)
    accept_countersignature(pair.provider, pair.consumer_peer, stored.doc)
    return stored.agreement_id


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    made = make_pair(tmp_path_factory.mktemp("documents"))
    yield made
    made.provider.close()
    made.consumer.close()


ASKED = Request(purpose="credit-scoring", app="scoring", fields=("company_id", "phone"),
                max_deliveries=2, period=2 * DAY, retention=DAY, max_reads=3,
                valid_for=30 * DAY)


def resigned(pair: Pair, doc: SignedDoc, change: Callable[[dict[str, Any]], None],
             keys: NodeKeys | None = None) -> SignedDoc:
    """``doc`` with its body changed, signed again by the provider (or ``keys``)."""
    body = json.loads(doc.payload)
    change(body)
    return SignedDoc.create("agreement", body, keys or pair.provider.keys)


def _terms(**change: Any) -> Callable[[dict[str, Any]], None]:
    return lambda body: body["terms"].update(change)


def _set(**change: Any) -> Callable[[dict[str, Any]], None]:
    return lambda body: body.update(change)


Tamper = Callable[[Pair, SignedDoc], SignedDoc]
ACCEPTANCE: dict[str, tuple[Tamper, type[TrustspaceError] | None, str]] = {
    "the provider's agreement as it is": (lambda p, d: d, None, ""),
    "a term changed after the provider signed": (
        lambda p, d: SignedDoc("agreement", canonical_json(
            {**json.loads(d.payload), "terms": {**json.loads(d.payload)["terms"],
                                                "max_reads": 1000}}), d.signatures),
        BadSignature, "does not verify"),
    "the provider's signature flipped": (
        lambda p, d: SignedDoc("agreement", d.payload, {
            k: flip(v, 10) for k, v in d.signatures.items()}), BadSignature, "does not verify"),
    "signed by another key than the provider's": (
        lambda p, d: SignedDoc("agreement", d.payload, {
            p.provider.node_id: OTHER.sign("agreement", d.payload)}),
        BadSignature, "does not verify"),
    "signed by the consumer instead": (
        lambda p, d: resigned(p, d, lambda b: None, p.consumer.keys), BadSignature,
        "not signed by"),
    "more reads than asked": (
        lambda p, d: resigned(p, d, _terms(max_reads=4)), ContractRefused, "more max_reads"),
    "more deliveries than asked": (
        lambda p, d: resigned(p, d, _terms(max_deliveries=3)), ContractRefused,
        "more max_deliveries"),
    "a shorter period than asked": (
        lambda p, d: resigned(p, d, _terms(period=DAY)), ContractRefused, "shorter period"),
    "a longer retention than asked": (
        lambda p, d: resigned(p, d, _terms(retention=2 * DAY)), ContractRefused,
        "more retention"),
    "a longer lifetime than asked": (
        lambda p, d: resigned(p, d, lambda b: (b["terms"].update(valid_for=31 * DAY),
                                               b.update(expires_at=b["created_at"]
                                                        + 31 * DAY * 1000))),
        ContractRefused, "more valid_for"),
    "an onward transfer not asked": (
        lambda p, d: resigned(p, d, _terms(onward_transfer=True)), ContractRefused,
        "onward transfer"),
    "a field not asked": (
        lambda p, d: resigned(p, d, _terms(fields=[["company_id", "plain"],
                                                   ["legal_person", "mask"],
                                                   ["phone", "hash"]])),
        ContractRefused, "does not match"),
    "another purpose": (
        lambda p, d: resigned(p, d, _terms(purpose="marketing")), ContractRefused,
        "does not match"),
    "another application": (
        lambda p, d: resigned(p, d, _terms(app="other-app")), ContractRefused,
        "does not match"),
    "an agreement for another request": (
        lambda p, d: resigned(p, d, _set(request_id="req-someone-else")), ContractRefused,
        "does not match"),
    "between other nodes": (
        lambda p, d: resigned(p, d, _set(consumer=OTHER.node_id)), ContractRefused,
        "between other nodes"),
    "a wrong consumer domain": (
        lambda p, d: resigned(p, d, _set(consumer_domain="retail.qingdao")), ContractRefused,
        "wrong domains"),
    "an expiry that does not match the lifetime": (
        lambda p, d: resigned(p, d, lambda b: b.update(expires_at=b["expires_at"] + 1)),
        MalformedMessage, "expiry"),
    "another kind of document": (
        lambda p, d: SignedDoc.create("revocation", json.loads(d.payload), p.provider.keys),
        MalformedMessage, "expected an agreement"),
}


@pytest.mark.parametrize("tamper, error, message", ACCEPTANCE.values(), ids=ACCEPTANCE.keys())
def test_the_consumer_countersigns_only_the_agreement_it_asked_for(
        pair: Pair, tamper: Tamper, error: type[TrustspaceError] | None, message: str) -> None:
    request_id, genuine = propose(pair, ASKED)
    doc = tamper(pair, genuine)
    stored_before = _agreements(pair.consumer)

    if error is None:
        stored = accept_agreement(pair.consumer, pair.provider_peer, request_id, doc)
        assert stored.state == "active"
        assert set(stored.doc.signatures) == {pair.provider.node_id, pair.consumer.node_id}
        verify_agreement(stored.doc, pair.provider.card(), pair.consumer.card(),
                         countersigned=True)
        return
    with pytest.raises(error, match=message):
        accept_agreement(pair.consumer, pair.provider_peer, request_id, doc)
    assert _agreements(pair.consumer) == stored_before
    assert _request_state(pair.consumer, request_id) == "pending"
    assert not pair.consumer.conn.execute("SELECT 1 FROM outbox WHERE kind = 'countersign' "
                                          "AND document LIKE ?", (f"%{request_id}%",)).fetchall()


def _agreements(home: Home) -> list[tuple[Any, ...]]:
    return home.conn.execute("SELECT agreement_id, document FROM agreements "
                             "ORDER BY agreement_id").fetchall()


def _request_state(home: Home, request_id: str) -> str:
    return str(home.conn.execute("SELECT state FROM requests WHERE request_id = ?",
                                 (request_id,)).fetchone()[0])


# verify_agreement on a document signed by both: (tamper, swap the cards, error, message)
VERIFICATION: dict[str, tuple[Callable[[Pair, SignedDoc], SignedDoc], bool,
                              type[TrustspaceError] | None, str]] = {
    "signed by both": (lambda p, d: d, False, None, ""),
    "the payload changed": (
        lambda p, d: SignedDoc("agreement", canonical_json(
            {**json.loads(d.payload), "dataset_id": "patients"}), d.signatures),
        False, BadSignature, "does not verify"),
    "the consumer's signature flipped": (
        lambda p, d: SignedDoc("agreement", d.payload, {
            **d.signatures, p.consumer.node_id: flip(d.signatures[p.consumer.node_id])}),
        False, BadSignature, r"\(consumer\) does not verify"),
    "without the consumer's signature": (
        lambda p, d: SignedDoc("agreement", d.payload, {
            p.provider.node_id: d.signatures[p.provider.node_id]}),
        False, BadSignature, "not signed by"),
    "checked with the parties swapped": (lambda p, d: d, True, ContractRefused,
                                         "between other nodes"),
}


@pytest.mark.parametrize("tamper, swap, error, message", VERIFICATION.values(),
                         ids=VERIFICATION.keys())
def test_both_nodes_verify_both_signatures_of_an_agreement(
        pair: Pair, tamper: Callable[[Pair, SignedDoc], SignedDoc], swap: bool,
        error: type[TrustspaceError] | None, message: str) -> None:
    agreement_id = agree(pair)
    for home in (pair.provider, pair.consumer):
        stored = home.conn.execute("SELECT document FROM agreements WHERE agreement_id = ?",
                                   (agreement_id,)).fetchone()[0]
        doc = tamper(pair, SignedDoc.from_json(stored))
        cards = (pair.provider.card(), pair.consumer.card())
        if swap:
            cards = cards[::-1]
        if error is None:
            assert verify_agreement(doc, *cards, countersigned=True).agreement_id == agreement_id
            continue
        with pytest.raises(error, match=message):
            verify_agreement(doc, *cards, countersigned=True)


@pytest.mark.parametrize("request_", [
    Request(purpose="credit-scoring", app="scoring"),
    Request(purpose="marketing", app="scoring"),  # a purpose the offer does not grant
], ids=["agreed", "rejected"])
def test_an_answer_asked_for_again_is_the_very_same_signed_documents(
        pair: Pair, request_: Request) -> None:
    doc = make_request(pair.consumer, pair.provider_peer, "offer", request_)
    first = receive_request(pair.provider, pair.consumer_peer, doc)
    for again in (request_status(pair.provider, pair.consumer_peer, first.request_id),
                  receive_request(pair.provider, pair.consumer_peer, doc)):  # a retry
        assert (again.state, again.reasons) == (first.state, first.reasons)
        assert again.decision is not None and first.decision is not None
        assert again.decision.to_json() == first.decision.to_json()
        assert (again.agreement.to_json() if again.agreement else None) == \
            (first.agreement.to_json() if first.agreement else None)
    assert first.state == ("agreed" if request_.purpose == "credit-scoring" else "rejected")


def test_the_consumer_returns_the_agreement_as_it_stored_it(pair: Pair) -> None:
    request_id, doc = propose(pair, ASKED)
    returned = accept_agreement(pair.consumer, pair.provider_peer, request_id, doc)
    stored = load_agreement(pair.consumer, returned.agreement_id)
    assert returned == stored
    assert (returned.state, returned.role, returned.peer_id) == (
        "active", "consumer", pair.provider.node_id)
    assert set(returned.doc.signatures) == {pair.provider.node_id, pair.consumer.node_id}


def test_an_agreement_for_a_request_already_closed_is_refused_and_changes_nothing(
        pair: Pair) -> None:
    """The running node may have closed the request (the provider did not know it when
    asked): an agreement arriving after that is refused, never countersigned."""
    request_id, doc = propose(pair, ASKED)
    record_rejection(pair.consumer, request_id, ({"term": "not_found", "message": "unknown"},))
    stored_before = _agreements(pair.consumer)
    with pytest.raises(ContractRefused, match=f"request {request_id} is already rejected"):
        accept_agreement(pair.consumer, pair.provider_peer, request_id, doc)
    assert _agreements(pair.consumer) == stored_before
    assert _request_state(pair.consumer, request_id) == "rejected"
    assert not pair.consumer.conn.execute("SELECT 1 FROM outbox WHERE kind = 'countersign' "
                                          "AND document LIKE ?", (f"%{request_id}%",)).fetchall()


COUNTERSIGNATURES: dict[str, tuple[Callable[[Pair, SignedDoc], SignedDoc], type[
        TrustspaceError], str]] = {
    "a countersigned document that differs from the one the provider signed": (
        lambda p, d: resigned(p, d, _terms(max_reads=1)).signed_by(p.consumer.keys),
        ContractRefused, "differs from the one this node signed"),
    "a countersignature that does not verify": (
        lambda p, d: SignedDoc("agreement", d.payload, {
            **d.signatures, p.consumer.node_id: flip(d.signatures[p.consumer.node_id])}),
        BadSignature, "does not verify"),
    "no countersignature at all": (
        lambda p, d: SignedDoc("agreement", d.payload, {
            p.provider.node_id: d.signatures[p.provider.node_id]}),
        BadSignature, "not signed by"),
}


@pytest.mark.parametrize("tamper, error, message", COUNTERSIGNATURES.values(),
                         ids=COUNTERSIGNATURES.keys())
def test_the_provider_activates_only_the_agreement_it_signed_countersigned(
        pair: Pair, tamper: Callable[[Pair, SignedDoc], SignedDoc],
        error: type[TrustspaceError], message: str) -> None:
    request_id, doc = propose(pair, ASKED)
    stored = accept_agreement(pair.consumer, pair.provider_peer, request_id, doc)
    with pytest.raises(error, match=message):
        accept_countersignature(pair.provider, pair.consumer_peer, tamper(pair, stored.doc))
    state = pair.provider.conn.execute("SELECT state FROM agreements WHERE agreement_id = ?",
                                       (stored.agreement_id,)).fetchone()[0]
    assert state == "awaiting_countersignature"
    assert accept_countersignature(pair.provider, pair.consumer_peer,
                                   stored.doc).state == "active"
