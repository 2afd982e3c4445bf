"""Envelopes: what the consumer accepts, and every tampered or replayed envelope it refuses.

First :func:`node.envelopes.open_envelope` on its own, with fresh keys: any flipped byte of
header, signature or body, an envelope of another agreement, delivery or position in the
chain. Then the consumer's :class:`node.receive.Receiver` fed with the provider's real
envelopes (two homes in ``tmp_path``, no server): a delivery with one bad frame is aborted
and leaves nothing of itself in the vault.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.public import SealedBox

from node.agreements import load_agreement
from node.canonical import canonical_json
from node.delivery import envelopes, finish, start_delivery
from node.destruction import accept_receipt
from node.documents import SignedDoc
from node.envelopes import (
    FIRST_PREV,
    EnvelopeHeader,
    digest_of,
    encode_batch,
    open_envelope,
    seal,
)
from node.errors import (
    BadSignature,
    ContractRefused,
    EnvelopeTampered,
    MalformedMessage,
    TrustspaceError,
)
from node.home import Home
from node.identity import NodeKeys
from node.receive import Receiver
from node.retention import destroy_due
from node.revocation import accept_revocation, revoke
from tests.unit.node.test_documents import Pair, agree, flip, make_pair

PROVIDER, CONSUMER, OTHER = NodeKeys.generate(), NodeKeys.generate(), NodeKeys.generate()
FIELDS = ("company_id", "legal_person", "phone", "revenue")
BATCHES = [[["C000001", "Z********1", "5f0c", 1.5], ["C000002", "Z********2", "77aa", 3.0]],
           [["C000003", "Z********3", "19be", 4.5]]]

Sealed = tuple[bytes, bytes, bytes]


def envelope(seq: int = 0, prev: str = FIRST_PREV, *, agreement: str = "agr-1",
             delivery: str = "dlv-1", rows: list[Any] | None = None,
             signer: NodeKeys = PROVIDER, to: NodeKeys = CONSUMER,
             fields: tuple[str, ...] = FIELDS, force: dict[str, Any] | None = None) -> Sealed:
    """A sealed envelope of ``rows`` (the batch ``seq``); ``force`` overrides header values."""
    batch = BATCHES[seq] if rows is None else rows
    plaintext = encode_batch(batch)
    made = EnvelopeHeader(agreement, delivery, seq, len(batch), fields, digest_of(plaintext),
                          prev)
    return seal(signer, to.box.public_key, replace(made, **(force or {})), plaintext)


def expected(seq: int = 0, prev: str = FIRST_PREV) -> EnvelopeHeader:
    return EnvelopeHeader("agr-1", "dlv-1", seq, 0, FIELDS, "", prev)


def open_(sealed: Sealed, expect: EnvelopeHeader | None = None) -> list[list[Any]]:
    header, signature, body = sealed
    return open_envelope(header, signature, body, provider_key=PROVIDER.verify_key,
                         box_key=CONSUMER.box, expect=expect or expected())[2]


def test_a_chain_of_envelopes_opens_in_order() -> None:
    first = envelope(0)
    header, _, rows = open_envelope(*first, provider_key=PROVIDER.verify_key,
                                    box_key=CONSUMER.box, expect=expected())
    assert rows == BATCHES[0]
    assert EnvelopeHeader.decode(header.encode()) == header
    assert open_(envelope(1, header.digest), expected(1, header.digest)) == BATCHES[1]


@given(st.lists(st.lists(st.one_of(
    st.none(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
    st.text()), min_size=3, max_size=3), max_size=20))
def test_a_batch_carries_every_value_exactly_as_stored(rows: list[list[Any]]) -> None:
    """What a dataset table can hold (NULL, 64-bit integers, finite floats, text) comes out
    of a batch as it went in, for this node and for any JSON reader of the vault's rows."""
    sent = envelope(0, rows=rows, fields=FIELDS[:3])
    opened = open_(sent, replace(expected(), fields=FIELDS[:3]))
    assert opened == rows == json.loads(encode_batch(rows))


@pytest.mark.parametrize("part", [0, 1, 2], ids=["header", "signature", "body"])
def test_every_flipped_byte_of_an_envelope_is_refused(part: int) -> None:
    sealed = envelope(0)
    refused = BadSignature if part < 2 else EnvelopeTampered
    for index in range(len(sealed[part])):
        for bit in (0x01, 0x80):
            damaged = list(sealed)
            data = sealed[part]
            damaged[part] = data[:index] + bytes([data[index] ^ bit]) + data[index + 1:]
            with pytest.raises(refused):
                open_(tuple(damaged))  # type: ignore[arg-type]


def _signed_header(header: bytes, body_rows: list[Any] | None = None) -> Sealed:
    """A header of the provider's own making (signed), with a genuine body."""
    plaintext = encode_batch(BATCHES[0] if body_rows is None else body_rows)
    return header, PROVIDER.sign("envelope", header), SealedBox(
        CONSUMER.box.public_key).encrypt(plaintext)


def _header_json(**change: Any) -> dict[str, Any]:
    plaintext = encode_batch(BATCHES[0])
    raw = {"agreement": "agr-1", "delivery": "dlv-1", "seq": 0, "rows": 2,
           "fields": list(FIELDS), "digest": digest_of(plaintext), "prev": FIRST_PREV}
    raw.update(change)
    return raw


REFUSALS: dict[str, tuple[Callable[[], Sealed], type[TrustspaceError], str]] = {
    "signed by another node": (lambda: envelope(0, signer=OTHER), BadSignature,
                               "envelope 0 does not verify"),
    "signed as another kind of document": (
        lambda: (lambda h, s, b: (h, PROVIDER.sign("agreement", h), b))(*envelope(0)),
        BadSignature, "does not verify"),
    "replayed from another agreement": (lambda: envelope(0, agreement="agr-2"),
                                        EnvelopeTampered, "agreement agr-2, expected agr-1"),
    "replayed from another delivery": (lambda: envelope(0, delivery="dlv-2"),
                                       EnvelopeTampered, "delivery dlv-2, expected dlv-1"),
    "replayed at another place in the sequence": (
        lambda: envelope(1), EnvelopeTampered, "seq 1, expected 0"),
    "a previous digest that breaks the chain": (
        lambda: envelope(0, prev="ab" * 32), EnvelopeTampered, "prev"),
    "fields other than the agreement's": (
        lambda: envelope(0, rows=[r[:3] for r in BATCHES[0]], fields=FIELDS[:3]),
        EnvelopeTampered, "fields"),
    "sealed to another node": (lambda: envelope(0, to=OTHER), EnvelopeTampered,
                               "does not decrypt"),
    "the body of another envelope": (
        lambda: (lambda a, b: (a[0], a[1], b[2]))(envelope(0), envelope(1)),
        EnvelopeTampered, "does not match its digest"),
    "more rows announced than held": (lambda: envelope(0, force={"rows": 3}),
                                      EnvelopeTampered, "does not hold 3 rows"),
    "rows of the wrong width": (
        lambda: envelope(0, rows=[r + ["extra"] for r in BATCHES[0]]), EnvelopeTampered,
        "does not hold 2 rows of 4 fields"),
    "a body that is no batch of rows": (
        lambda: (lambda p: seal(PROVIDER, CONSUMER.box.public_key, EnvelopeHeader(
            "agr-1", "dlv-1", 0, 2, FIELDS, digest_of(p), FIRST_PREV), p))(b'{"rows": 2}'),
        EnvelopeTampered, "does not hold"),
    "a body that is no JSON": (
        lambda: (lambda p: seal(PROVIDER, CONSUMER.box.public_key, EnvelopeHeader(
            "agr-1", "dlv-1", 0, 2, FIELDS, digest_of(p), FIRST_PREV), p))(b"\x00\x01"),
        EnvelopeTampered, "not a batch of rows"),
    "a batch holding NaN, which JSON has no word for": (
        lambda: (lambda p: seal(PROVIDER, CONSUMER.box.public_key, EnvelopeHeader(
            "agr-1", "dlv-1", 0, 1, FIELDS, digest_of(p), FIRST_PREV), p))(
            b'[["C000001","Z********1","5f0c",NaN]]'),
        EnvelopeTampered, "not a batch of rows"),
    "a signed header that is not canonical": (
        lambda: _signed_header(json.dumps(_header_json(), indent=1).encode()),
        MalformedMessage, "canonical"),
    "a signed header with an extra key": (
        lambda: _signed_header(canonical_json(_header_json(note="x"))), MalformedMessage,
        "exactly the header fields"),
    "a signed header with a negative sequence": (
        lambda: _signed_header(canonical_json(_header_json(seq=-1))), MalformedMessage,
        "wrong type"),
}


@pytest.mark.parametrize("make, error, message", REFUSALS.values(), ids=REFUSALS.keys())
def test_an_envelope_that_is_not_the_expected_one_is_refused(
        make: Callable[[], Sealed], error: type[TrustspaceError], message: str) -> None:
    with pytest.raises(error, match=message):
        open_(make())


# ---- the consumer's receiver with the provider's real envelopes ------------------------------
@dataclass(frozen=True)
class Delivery:
    """Everything the provider sent for one delivery, frame by frame."""

    start: SignedDoc
    envelopes: list[Sealed]
    end: SignedDoc
    delivery_id: str


def deliver(pair: Pair, agreement_id: str) -> Delivery:
    plan = start_delivery(pair.provider, pair.consumer_peer, agreement_id, "", 0)
    sent = list(envelopes(pair.provider, plan))
    return Delivery(plan.start, sent, finish(pair.provider, plan), plan.delivery_id)


def receive(pair: Pair, agreement_id: str, frames: Delivery) -> Receiver:
    """What ``fetch`` does with the frames: verify each, abort the delivery on a bad one."""
    receiver = Receiver(pair.consumer, load_agreement(pair.consumer, agreement_id),
                        pair.provider_peer)
    try:
        receiver.on_start(frames.start, None)
        for sealed in frames.envelopes:
            receiver.on_envelope(*sealed)
        receiver.on_end(frames.end)
    except TrustspaceError as e:
        receiver.abort(e)
        raise
    return receiver


@dataclass(frozen=True)
class Two:
    pair: Pair
    first: str  # an agreement
    second: str  # another agreement between the same nodes


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Two]:
    pair = make_pair(tmp_path_factory.mktemp("envelopes"), rows=2500)  # three envelopes
    yield Two(pair, agree(pair), agree(pair))
    pair.provider.close()
    pair.consumer.close()


def _swap(frames: Delivery, seq: int, sealed: Sealed) -> Delivery:
    changed = list(frames.envelopes)
    changed[seq] = sealed
    return replace(frames, envelopes=changed)


Forge = Callable[[Two, Delivery], Delivery]
RECEIVED: dict[str, tuple[Forge, type[TrustspaceError] | None, str]] = {
    "the delivery as the provider sent it": (lambda t, d: d, None, ""),
    "an envelope replayed from another agreement": (
        lambda t, d: _swap(d, 1, deliver(t.pair, t.second).envelopes[1]), EnvelopeTampered,
        "envelope 1 has agreement"),
    "an envelope replayed from another delivery": (
        lambda t, d: _swap(d, 1, deliver(t.pair, t.first).envelopes[1]), EnvelopeTampered,
        "envelope 1 has delivery"),
    "an envelope replayed at another place": (
        lambda t, d: _swap(d, 2, d.envelopes[1]), EnvelopeTampered, "envelope 1 has seq"),
    "an envelope left out": (
        lambda t, d: replace(d, envelopes=[d.envelopes[0], d.envelopes[2]]), EnvelopeTampered,
        "envelope 2 has seq"),
    "the last envelope left out": (
        lambda t, d: replace(d, envelopes=d.envelopes[:2]), EnvelopeTampered,
        "end does not match"),
    "an envelope with a flipped body byte": (
        lambda t, d: _swap(d, 2, (d.envelopes[2][0], d.envelopes[2][1],
                                  flip(d.envelopes[2][2], 100))),
        EnvelopeTampered, "does not decrypt"),
    "the end of another delivery": (
        lambda t, d: replace(d, end=deliver(t.pair, t.first).end), EnvelopeTampered,
        "end does not match"),
    "a start signed by the consumer itself": (
        lambda t, d: replace(d, start=SignedDoc.create(
            "delivery-start", d.start.body(), t.pair.consumer.keys)), BadSignature,
        "not signed by"),
}


@pytest.mark.parametrize("forge, error, message", RECEIVED.values(), ids=RECEIVED.keys())
def test_a_delivery_with_a_bad_frame_is_aborted_and_leaves_nothing(
        two: Two, forge: Forge, error: type[TrustspaceError] | None, message: str) -> None:
    pair = two.pair
    frames = forge(two, deliver(pair, two.first))
    if error is None:
        receiver = receive(pair, two.first, frames)
        assert (receiver.completed, receiver.rows, receiver.next_seq) == (True, 2500, 3)
        assert _vault_rows(pair.consumer, frames.delivery_id) == 2500
        return
    with pytest.raises(error, match=message):
        receive(pair, two.first, frames)
    assert _vault_rows(pair.consumer, frames.delivery_id) == 0
    kept = pair.consumer.conn.execute(
        "SELECT count(*) FROM envelopes WHERE delivery_id = ?", (frames.delivery_id,)).fetchone()
    assert kept == (0,)
    aborted = [json.loads(e)["body"] for (e,) in pair.consumer.conn.execute(
        "SELECT entry FROM audit_entries WHERE kind = 'delivery.aborted'")]
    assert aborted and aborted[-1]["agreement"] == two.first


def _vault_rows(home: Home, delivery_id: str) -> int:
    return int(home.conn.execute("SELECT coalesce(sum(rows), 0) FROM vault_batches WHERE "
                                 "delivery_id = ?", (delivery_id,)).fetchone()[0])


# ---- deliveries cut off ---------------------------------------------------------------------
def _cut_off(pair: Pair, agreement_id: str) -> tuple[Receiver, Delivery]:
    """A delivery of which the consumer stored the start and the first envelope only."""
    frames = deliver(pair, agreement_id)
    receiver = Receiver(pair.consumer, load_agreement(pair.consumer, agreement_id),
                        pair.provider_peer)
    receiver.on_start(frames.start, None)
    receiver.on_envelope(*frames.envelopes[0])
    assert _vault_rows(pair.consumer, frames.delivery_id) == 1000
    return receiver, frames


def _keys(home: Home, agreement_id: str) -> int:
    return int(home.conn.execute("SELECT count(*) FROM vault_keys WHERE agreement_id = ?",
                                 (agreement_id,)).fetchone()[0])


def test_a_delivery_cut_off_and_never_resumed_is_destroyed_at_its_retention_deadline(
        tmp_path: Path) -> None:
    pair = make_pair(tmp_path, rows=2500, retention="1s")
    agreement_id = agree(pair)
    receiver, frames = _cut_off(pair, agreement_id)

    deadline = time.monotonic() + 30  # a generous bound on a one-second retention
    while not destroy_due(pair.consumer):
        assert time.monotonic() < deadline, "the cut-off delivery was never destroyed"
        time.sleep(0.05)

    assert _vault_rows(pair.consumer, frames.delivery_id) == 0
    reason, = pair.consumer.conn.execute("SELECT destroy_reason FROM deliveries WHERE "
                                         "delivery_id = ?", (frames.delivery_id,)).fetchone()
    assert reason == "retention"
    receipt = SignedDoc.from_json(pair.consumer.conn.execute(
        "SELECT document FROM outbox WHERE kind = 'receipt'").fetchone()[0]).body()
    assert (receipt["rows"], receipt["reason"]) == (1000, "retention")
    # the rest arriving late is refused: nothing more of a destroyed delivery is stored
    with pytest.raises(ContractRefused, match="destroyed while it was received"):
        receiver.on_envelope(*frames.envelopes[1])
    assert _vault_rows(pair.consumer, frames.delivery_id) == 0
    # and the provider, holding the receipt, will not send that delivery again
    accept_receipt(pair.provider, pair.consumer_peer, SignedDoc.from_json(
        pair.consumer.conn.execute("SELECT document FROM receipts").fetchone()[0]))
    with pytest.raises(ContractRefused, match="cannot be resumed"):
        start_delivery(pair.provider, pair.consumer_peer, agreement_id, frames.delivery_id, 1)


def test_envelopes_still_in_flight_after_a_revocation_are_not_stored(tmp_path: Path) -> None:
    pair = make_pair(tmp_path, rows=2500)
    agreement_id = agree(pair)
    receiver, frames = _cut_off(pair, agreement_id)

    accept_revocation(pair.consumer, pair.provider_peer, revoke(pair.provider, agreement_id))
    assert (_vault_rows(pair.consumer, frames.delivery_id), _keys(pair.consumer,
                                                                  agreement_id)) == (0, 0)

    with pytest.raises(ContractRefused, match="destroyed while it was received"):
        receiver.on_envelope(*frames.envelopes[1])
    assert (_vault_rows(pair.consumer, frames.delivery_id), _keys(pair.consumer,
                                                                  agreement_id)) == (0, 0)
