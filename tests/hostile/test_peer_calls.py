"""Documents a trusted peer signs and sends, fed to the functions its calls reach.

A peer that went bad signs whatever it likes with its own key, so these cases are signed
correctly and only their content is hostile: destruction receipts (the provider's
``accept_receipt``), revocations (the consumer's ``accept_revocation``), decisions (the
consumer's ``record_decided_rejection``) and delivery start and end documents (the
consumer's ``Receiver``). Each is accepted as a good peer's would be, or refused with a
product error that changes nothing but the audit log.

Crashes found here are kept as regression cases named after them (fields of the wrong
type or beyond SQLite's integers reaching the database).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node import negotiation
from node.agreements import load_agreement
from node.destruction import accept_receipt
from node.documents import SignedDoc
from node.errors import (
    BadSignature,
    ContractRefused,
    EnvelopeTampered,
    MalformedMessage,
    NotFound,
    TrustspaceError,
)
from node.ids import new_id
from node.peers import Peer, peer_by_id
from node.receive import Receiver
from node.revocation import accept_revocation
from policies.evaluate import Request
from tests.hostile.strategies import examples, mutations, outcome, payload_of
from tests.hostile.world import OFFER_ID, Watch, World

EXAMPLES = examples(120)
REFUSALS = (MalformedMessage, ContractRefused, NotFound, BadSignature, EnvelopeTampered)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("peer-calls"))
    try:
        yield made
    finally:
        made.close()


def consumer_peer(w: World) -> Peer:
    return peer_by_id(w.provider.home, w.consumer.home.node_id)


def provider_peer(w: World) -> Peer:
    return peer_by_id(w.consumer.home, w.provider.home.node_id)


def signed(doc_type: str, body: Any, w: World, by: str) -> SignedDoc:
    keys = (w.consumer if by == "consumer" else w.provider).home.keys
    return SignedDoc(doc_type, payload_of(body)).signed_by(keys)


def unbindable(value: object) -> bool:
    """A value SQLite cannot take as a parameter: a list, an object, an int beyond 64 bits."""
    return isinstance(value, (list, dict)) or (
        isinstance(value, int) and not -(2**63) <= value < 2**63)


# ---- destruction receipts, at the provider -----------------------------------------------------
def receipt_body(w: World, **changes: Any) -> dict[str, Any]:
    body = {"receipt_id": new_id("rcp"), "agreement_id": w.agreement_id,
            "provider": w.provider.home.node_id, "consumer": w.consumer.home.node_id,
            "reason": "requested", "deliveries": [{"delivery_id": w.delivery_id, "rows": 20,
                                                   "digests": ["0" * 64]}],
            "rows": 20, "destroyed_at": int(time.time() * 1000)}
    body.update(changes)
    return body


@EXAMPLES
@given(data=st.data())
def test_a_hostile_receipt_is_acknowledged_or_refused(world: World, data: st.DataObject) -> None:
    body = data.draw(mutations(receipt_body(world)))
    receipt = signed("destruction-receipt", body, world, "consumer")
    watch = Watch(world.provider)

    result = outcome(accept_receipt, world.provider.home, consumer_peer(world), receipt)

    if isinstance(result, TrustspaceError):
        assert isinstance(result, REFUSALS), result
        watch.assert_unchanged()
    else:
        assert result.type == "receipt-ack" and result.body()["receipt_hash"] == receipt.hash


RECEIPT_CRASHES = {
    "agreement id as a list": {"agreement_id": ["agr"]},
    "agreement id beyond 64 bits": {"agreement_id": 2**64},
    "receipt id as an object": {"receipt_id": {"id": 1}},
    "destruction time beyond 63 bits": {"destroyed_at": 2**63},
}


@pytest.mark.parametrize("changes", list(RECEIPT_CRASHES.values()), ids=list(RECEIPT_CRASHES))
def test_regression_receipt_fields_of_the_wrong_type_reach_sqlite(
        world: World, changes: dict[str, Any]) -> None:
    receipt = signed("destruction-receipt", receipt_body(world, **changes), world, "consumer")
    with pytest.raises(TrustspaceError):
        accept_receipt(world.provider.home, consumer_peer(world), receipt)


# ---- revocations, at the consumer --------------------------------------------------------------
@pytest.fixture(scope="module")
def revocable(world: World) -> str:
    """An agreement of its own: a hostile revocation may well be a valid one."""
    return world.negotiate()


def revocation_body(w: World, agreement_id: str, **changes: Any) -> dict[str, Any]:
    body = {"agreement_id": agreement_id, "provider": w.provider.home.node_id,
            "consumer": w.consumer.home.node_id, "reason": "revoked by the provider",
            "revoked_at": int(time.time() * 1000)}
    body.update(changes)
    return body


@EXAMPLES
@given(data=st.data())
def test_a_hostile_revocation_is_acted_on_or_refused(world: World, revocable: str,
                                                     data: st.DataObject) -> None:
    body = data.draw(mutations(revocation_body(world, revocable)))
    doc = signed("revocation", body, world, "provider")
    watch = Watch(world.consumer)

    result = outcome(accept_revocation, world.consumer.home, provider_peer(world), doc)

    if isinstance(result, TrustspaceError):
        assert isinstance(result, REFUSALS), result
        watch.assert_unchanged()
    else:
        assert result.agreement_id == revocable and result.state == "revoked"


def test_regression_revocation_time_beyond_63_bits(world: World) -> None:
    agreement_id = world.negotiate()
    doc = signed("revocation", revocation_body(world, agreement_id, revoked_at=2**63), world,
                 "provider")
    with pytest.raises(TrustspaceError):
        accept_revocation(world.consumer.home, provider_peer(world), doc)


# ---- decisions, at the consumer ----------------------------------------------------------------
def pending_request(w: World) -> str:
    doc = negotiation.make_request(w.consumer.home, provider_peer(w), OFFER_ID,
                                   Request(purpose="credit-scoring", app="scoring"))
    return str(doc.body()["request_id"])


@EXAMPLES
@given(data=st.data())
def test_a_hostile_decision_is_recorded_or_refused(world: World, data: st.DataObject) -> None:
    request_id = pending_request(world)
    body = data.draw(mutations({
        "request_id": request_id, "provider": world.provider.home.node_id,
        "consumer": world.consumer.home.node_id, "outcome": "rejected",
        "reasons": [{"term": "fields", "message": "no"}], "agreement_id": None,
        "decided_at": 1}))
    decision = signed("decision", body, world, "provider")
    watch = Watch(world.consumer)

    result = outcome(negotiation.record_decided_rejection, world.consumer.home,
                     provider_peer(world), request_id, decision)

    if isinstance(result, TrustspaceError):
        assert isinstance(result, REFUSALS), result
        watch.assert_unchanged()
    else:
        assert result == tuple(body["reasons"])


# ---- delivery start and end documents, at the consumer -----------------------------------------
def start_body(w: World, **changes: Any) -> dict[str, Any]:
    stored = load_agreement(w.consumer.home, w.agreement_id)
    body = {"delivery_id": new_id("dlv"), "agreement_id": w.agreement_id, "number": 7,
            "fields": list(stored.agreement.terms.field_names), "batch_rows": 1000, "rows": 0,
            "envelopes": 0, "started_at": 1}
    body.update(changes)
    return body


def receiver(w: World) -> Receiver:
    return Receiver(w.consumer.home, load_agreement(w.consumer.home, w.agreement_id),
                    provider_peer(w))


@EXAMPLES
@given(data=st.data())
def test_a_hostile_delivery_start_is_taken_or_refused(world: World, data: st.DataObject) -> None:
    body = data.draw(mutations(start_body(world)))
    start = signed("delivery-start", body, world, "provider")
    watch = Watch(world.consumer)

    result = outcome(receiver(world).on_start, start, None)

    if isinstance(result, TrustspaceError):
        assert isinstance(result, REFUSALS), result
        watch.assert_unchanged()


@EXAMPLES
@given(data=st.data())
def test_a_hostile_delivery_end_is_taken_or_refused(world: World, data: st.DataObject) -> None:
    start = start_body(world)
    taking = receiver(world)
    taking.on_start(signed("delivery-start", start, world, "provider"), None)
    body = data.draw(mutations({
        "delivery_id": start["delivery_id"], "agreement_id": world.agreement_id,
        "envelopes": 0, "rows": 0, "last_digest": "", "completed_at": 2}))
    watch = Watch(world.consumer)

    result = outcome(taking.on_end, signed("delivery-end", body, world, "provider"))

    if isinstance(result, TrustspaceError):
        assert isinstance(result, REFUSALS), result
        watch.assert_unchanged()
    else:
        assert taking.completed


START_CRASHES = {
    "envelopes as text": {"envelopes": "many"},
    "rows as a list": {"rows": [1]},
    "rows of 5000 digits as text": {"rows": "9" * 5000},
    "number as an object": {"number": {"n": 1}},
    "number beyond 64 bits": {"number": 2**64},
    "number as null": {"number": None},
}


@pytest.mark.parametrize("changes", list(START_CRASHES.values()), ids=list(START_CRASHES))
def test_regression_delivery_start_counts_of_the_wrong_type(world: World,
                                                             changes: dict[str, Any]) -> None:
    start = signed("delivery-start", start_body(world, **changes), world, "provider")
    with pytest.raises(TrustspaceError):
        receiver(world).on_start(start, None)
