"""Hostile requests to a live node: every one refused with a clear status, nothing changed,
and the node still serving afterwards.

The nodes serve in-process (``tests/hostile/world.py``); calls are built by hand and sent as
raw bytes, so a request can be truncated, random, oversized or of the wrong wire type, and
a signed call from a trusted peer can carry any document at all. After each case: the
status is a deliberate refusal (never INTERNAL or UNKNOWN) with one line of details, the
database holds what it held (the audit log may add the refusal), and a health check and a
legitimate signed call still work.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError, Message
from hypothesis import given
from hypothesis import strategies as st

from connector.pb import trustspace_pb2 as pb
from connector.status import ERROR_KEY, MAX_DETAILS
from node.canonical import canonical_json
from node.checkpoints import origin_of
from node.identity import NodeKeys
from node.signednote import Checkpoint, sign_note
from tests.hostile.strategies import examples
from tests.hostile.world import (
    NEGOTIATION_REFUSAL_KINDS,
    TIMEOUT_S,
    Served,
    Watch,
    World,
    method_path,
    rpc_error,
    state,
)
from tests.node_db import audit_since, audit_size, read_db

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
# Statuses that mean "the node refused on purpose"; INTERNAL and UNKNOWN mean it broke.
DELIBERATE = {INVALID, DENIED, UNAUTH, NOT_FOUND, EXHAUSTED, grpc.StatusCode.ALREADY_EXISTS,
              grpc.StatusCode.FAILED_PRECONDITION}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("wire"), rows=3000)
    try:
        yield made
    finally:
        made.close()


# ---- the methods, with a typical request of each ----------------------------------------------
def _typical(w: World) -> dict[str, tuple[str, str, Message]]:
    """name: (service, method, a well-formed request with content)."""
    doc = pb.SignedDocument(type="request", payload=b'{"a":1}',
                            signatures=[pb.Signature(node_id="n" * 33, signature=bytes(64))])
    return {
        "ListOffers": ("Catalog", "ListOffers", pb.ListOffersRequest()),
        "Negotiate": ("Negotiation", "Negotiate", pb.NegotiateRequest(request=doc)),
        "RequestStatus": ("Negotiation", "RequestStatus",
                          pb.RequestStatusRequest(request_id="req-" + "a" * 32)),
        "Countersign": ("Negotiation", "Countersign", pb.CountersignRequest(agreement=doc)),
        "AgreementStatus": ("Negotiation", "AgreementStatus",
                            pb.AgreementStatusRequest(agreement_id=w.agreement_id)),
        "Fetch": ("Transfer", "Fetch", pb.FetchRequest(agreement_id=w.agreement_id,
                                                       resume_delivery_id=w.delivery_id,
                                                       from_sequence=1)),
        "SubmitReceipt": ("Receipts", "SubmitReceipt", pb.ReceiptRequest(receipt=doc)),
        "ExchangeCheckpoints": ("Audit", "ExchangeCheckpoints", pb.CheckpointExchangeRequest(
            checkpoint="origin\n1\n" + "A" * 44 + "\n\n", known_size=3,
            consistency=[bytes(32)], cosigned_size=2)),
        "Revoked": ("Notifications", "Revoked", pb.RevocationNotice(revocation=doc)),
    }


METHODS = ["ListOffers", "Negotiate", "RequestStatus", "Countersign", "AgreementStatus",
           "Fetch", "SubmitReceipt", "ExchangeCheckpoints", "Revoked"]


def _send_raw(w: World, name: str, data: bytes, signed_over: Message) -> None:
    service, method_name, _ = _typical(w)[name]
    method = method_path(service, method_name)
    by, target = ("provider", w.consumer) if service == "Notifications" else \
        ("consumer", w.provider)
    metadata = w.signed(method, signed_over, by=by)
    if service == "Transfer":
        w.raw_stream(target, method, data, metadata)
    else:
        w.raw_unary(target, method, data, metadata)


def _target(w: World, name: str) -> Served:
    return w.consumer if name == "Revoked" else w.provider


# ---- requests that are not protobuf messages at all ------------------------------------------
def _truncated(request: Message) -> bytes:
    data = request.SerializeToString()
    return data[:len(data) // 2 + 1] if len(data) > 2 else b"\x0a\x05ab"


UNDECODABLE: dict[str, Callable[[Message], bytes]] = {
    "truncated in the middle of a field": _truncated,
    "a length prefix longer than the message": lambda r: b"\x0a\xff\xff\xff\x0f" + b"x" * 8,
    "eight 0xff bytes (an endless varint)": lambda r: b"\xff" * 8,
    "an end-group tag without a start": lambda r: b"\x0c",
}


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("make", list(UNDECODABLE.values()), ids=list(UNDECODABLE))
def test_regression_undecodable_request_is_refused_as_malformed(
        world: World, name: str, make: Callable[[Message], bytes]) -> None:
    """gRPC ended a request that does not parse as INTERNAL ("Exception deserializing
    request!"), logged a traceback and left no audit entry; the interceptor now refuses it
    itself, before the nonce is stored."""
    typical = _typical(world)[name][2]
    data = make(typical)
    with pytest.raises(DecodeError):
        type(typical).FromString(data)
    target = _target(world, name)
    watch = Watch(target)
    nonces = state(target.path, volatile=())["seen_nonces"]

    error = rpc_error(_send_raw, world, name, data, typical)

    assert error.code() == INVALID, error.details()
    assert "is not a well-formed" in error.details()
    assert dict(error.trailing_metadata() or ())[ERROR_KEY] == "malformed_message"
    entries = watch.assert_unchanged()
    assert [(e.kind, e.body["reason"]) for e in entries] == [("call.refused",
                                                              "malformed_message")]
    assert state(target.path, volatile=())["seen_nonces"] == nonces  # refused before step 6
    world.assert_serving(target)


def test_bad_utf8_in_a_string_field_is_refused_as_malformed(world: World) -> None:
    request = pb.RequestStatusRequest(request_id="req-1")
    data = b"\x0a\x04\xff\xfe\xfd\xfc"  # field 1 (string), four bytes that are not UTF-8
    watch = Watch(world.provider)

    error = rpc_error(_send_raw, world, "RequestStatus", data, request)

    assert error.code() == INVALID and "RequestStatusRequest" in error.details()
    watch.assert_unchanged()
    world.assert_serving()


@pytest.mark.parametrize("name", METHODS)
@examples(40)
@given(data=st.binary(max_size=200))
def test_random_bytes_are_refused_or_answered_never_a_failure(world: World, name: str,
                                                              data: bytes) -> None:
    """Any bytes, signed as the message they parse to (so they reach the handler)."""
    service, method_name, typical = _typical(world)[name]
    try:
        parsed: Message = type(typical).FromString(data)
    except Exception:  # noqa: BLE001 — does not parse: sign the empty request instead
        parsed = type(typical)()
    target = _target(world, name)
    watch = Watch(target)
    try:
        _send_raw(world, name, data, parsed)
    except grpc.RpcError as e:
        assert isinstance(e, grpc.Call)
        assert e.code() in DELIBERATE, (e.code(), e.details())
        assert (e.details() or "").strip() and "\n" not in (e.details() or "")
        watch.assert_unchanged(NEGOTIATION_REFUSAL_KINDS)
    else:
        assert name in ("ListOffers",), f"{name} accepted random bytes {data!r}"
        watch.assert_unchanged()
    world.assert_serving(target)


# ---- wrong wire types: a known field sent with another type -----------------------------------
WRONG_TYPES: dict[str, tuple[str, bytes, set[grpc.StatusCode]]] = {
    # Protobuf keeps a field of the wrong wire type as an unknown field: the request then
    # lacks it, and is refused for that.
    "request id sent as a number": ("RequestStatus", b"\x08\x2a", {INVALID}),
    "agreement id sent as a fixed64": ("AgreementStatus", b"\x09" + bytes(8), {INVALID}),
    "document sent as a number": ("Negotiate", b"\x08\x01", {INVALID}),
    "document type sent as a number": ("Countersign", b"\x0a\x02\x08\x01", {INVALID}),
    "checkpoint sent as a number": ("ExchangeCheckpoints", b"\x08\x01", {INVALID}),
    "from_sequence sent as text": ("Fetch", b"\x1a\x03abc", {INVALID}),
    "receipt sent as a fixed32": ("SubmitReceipt", b"\x0d" + bytes(4), {INVALID}),
}


@pytest.mark.parametrize(("name", "data", "statuses"), list(WRONG_TYPES.values()),
                         ids=list(WRONG_TYPES))
def test_fields_of_the_wrong_wire_type_are_refused(world: World, name: str, data: bytes,
                                                   statuses: set[grpc.StatusCode]) -> None:
    typical = _typical(world)[name][2]
    parsed = type(typical).FromString(data)
    watch = Watch(_target(world, name))

    error = rpc_error(_send_raw, world, name, data, parsed)

    assert error.code() in statuses, (error.code(), error.details())
    watch.assert_unchanged()
    world.assert_serving(_target(world, name))


# ---- signed calls from a trusted peer, carrying hostile content ------------------------------
Build = Callable[[World], tuple[str, Message]]


def _doc(doc_type: str, payload: bytes, *signatures: tuple[str, bytes]) -> pb.SignedDocument:
    return pb.SignedDocument(type=doc_type, payload=payload, signatures=[
        pb.Signature(node_id=n, signature=s) for n, s in signatures])


def _signed(w: World, doc_type: str, body: Any, by: str = "consumer",
            raw: bytes | None = None) -> pb.SignedDocument:
    node = w.consumer if by == "consumer" else w.provider
    payload = canonical_json(body) if raw is None else raw
    keys = node.home.keys
    return _doc(doc_type, payload, (keys.node_id, keys.sign(doc_type, payload)))


def _request_body(w: World, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": "req-" + "b" * 32, "offer_id": "companies-credit",
        "provider": w.provider.home.node_id, "consumer": w.consumer.home.node_id,
        "purpose": "credit-scoring", "app": "scoring", "fields": None, "max_deliveries": None,
        "period": None, "retention": None, "max_reads": None, "valid_for": None,
        "onward_transfer": False, "created_at": 1}
    body.update(changes)
    return body


def _negotiate(body: Callable[[World], pb.SignedDocument]) -> Build:
    return lambda w: ("Negotiate", pb.NegotiateRequest(request=body(w)))


def _request(**changes: Any) -> Callable[[World], tuple[str, Message]]:
    return _negotiate(lambda w: _signed(w, "request", _request_body(w, **changes)))


def _receipt_body(w: World, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "receipt_id": "rcp-" + "c" * 32, "agreement_id": w.agreement_id,
        "provider": w.provider.home.node_id, "consumer": w.consumer.home.node_id,
        "reason": "requested", "deliveries": [{"delivery_id": w.delivery_id, "rows": 1,
                                               "digests": []}],
        "rows": 1, "destroyed_at": 1}
    body.update(changes)
    return body


def _receipt(**changes: Any) -> Callable[[World], tuple[str, Message]]:
    return lambda w: ("SubmitReceipt", pb.ReceiptRequest(
        receipt=_signed(w, "destruction-receipt", _receipt_body(w, **changes))))


def _revocation(**changes: Any) -> Callable[[World], tuple[str, Message]]:
    def build(w: World) -> tuple[str, Message]:
        body = {"agreement_id": w.agreement_id, "provider": w.provider.home.node_id,
                "consumer": w.consumer.home.node_id, "reason": "x", "revoked_at": 1, **changes}
        return "Revoked", pb.RevocationNotice(revocation=_signed(w, "revocation", body,
                                                                 by="provider"))
    return build


def _checkpoint(size: str, *, by: str = "consumer") -> Callable[[World], tuple[str, Message]]:
    def build(w: World) -> tuple[str, Message]:
        node = w.consumer if by == "consumer" else w.provider
        keys = node.home.keys
        text = f"{origin_of(keys.node_id)}\n{size}\n{'A' * 43}=\n"
        note = sign_note(text, keys.node_id, keys.signing)
        return "ExchangeCheckpoints", pb.CheckpointExchangeRequest(checkpoint=note)
    return build


def _stranger_checkpoint(w: World) -> tuple[str, Message]:
    keys = NodeKeys.generate()
    text = Checkpoint(origin_of(w.consumer.home.node_id), 5, bytes(32)).to_text()
    note = sign_note(text, w.consumer.home.node_id, keys.signing)
    return "ExchangeCheckpoints", pb.CheckpointExchangeRequest(checkpoint=note)


def _simple(name: str, request: Message) -> Callable[[World], tuple[str, Message]]:
    return lambda w: (name, request)


def _fetch(**fields: Any) -> Callable[[World], tuple[str, Message]]:
    def build(w: World) -> tuple[str, Message]:
        values = {"agreement_id": w.agreement_id, **fields}
        if values.get("resume_delivery_id") == "REAL":
            values["resume_delivery_id"] = w.delivery_id
        return "Fetch", pb.FetchRequest(**values)
    return build


LOOK_ALIKE = "req-\u0430" + "b" * 31  # a Cyrillic a
SIG = bytes(64)

# name: (build, expected status, words of the details, audit kinds the refusal may leave)
SIGNED_CASES: dict[str, tuple[Build, grpc.StatusCode, str]] = {
    # ids with path separators, control characters and look-alikes
    "request id with a path separator": (_simple("RequestStatus", pb.RequestStatusRequest(
        request_id="../../node.db")), INVALID, "is not a valid id"),
    "request id with a NUL": (_simple("RequestStatus", pb.RequestStatusRequest(
        request_id="req\x001")), INVALID, "(unprintable)"),
    "request id with a newline": (_simple("RequestStatus", pb.RequestStatusRequest(
        request_id="req\n1")), INVALID, "is not a valid id"),
    "request id with a Cyrillic look-alike": (_simple("RequestStatus", pb.RequestStatusRequest(
        request_id=LOOK_ALIKE)), INVALID, "is not a valid id"),
    "request id of fullwidth letters": (_simple("RequestStatus", pb.RequestStatusRequest(
        request_id="\uff52\uff45\uff51-1")), INVALID, "is not a valid id"),
    "request id of 100 000 characters": (_simple("RequestStatus", pb.RequestStatusRequest(
        request_id="r" * 100_000)), INVALID, "(unprintable)"),
    "agreement id with a backslash": (_simple("AgreementStatus", pb.AgreementStatusRequest(
        agreement_id="..\\agr")), INVALID, "is not a valid id"),
    "agreement id with a right-to-left override": (_simple(
        "AgreementStatus", pb.AgreementStatusRequest(agreement_id="agr-\u202e1")), INVALID,
        "(unprintable)"),
    "agreement id that names no agreement": (_simple("AgreementStatus",
                                                     pb.AgreementStatusRequest(
                                                         agreement_id="agr-0")), NOT_FOUND,
                                             "no agreement 'agr-0'"),
    "fetch of an agreement id with a path separator": (_fetch(agreement_id="agr/../x"),
                                                       INVALID, "is not a valid id"),
    "fetch of an agreement id with a tab": (_fetch(agreement_id="agr\t1"), INVALID,
                                            "is not a valid id"),
    "fetch resuming a delivery id with a slash": (_fetch(resume_delivery_id="dlv/1"),
                                                  INVALID, "is not a valid id"),
    "fetch of an agreement that does not exist": (_fetch(agreement_id="agr-0"), DENIED,
                                                  "there is no agreement 'agr-0'"),
    # absurd sequence numbers
    "fetch resuming at sequence 2^64-1": (_fetch(resume_delivery_id="REAL",
                                                 from_sequence=2**64 - 1), DENIED,
                                          "has only"),
    "fetch resuming a delivery of no agreement": (_fetch(resume_delivery_id="dlv-0",
                                                         from_sequence=1), DENIED,
                                                  "is not part of agreement"),
    # empty documents, documents of the wrong type, signatures of the wrong length
    "negotiate without a document": (_simple("Negotiate", pb.NegotiateRequest()), INVALID,
                                     "the request is missing"),
    "negotiate with an empty payload": (_simple("Negotiate", pb.NegotiateRequest(
        request=_doc("request", b""))), INVALID, "the request is missing"),
    "negotiate with an agreement document": (lambda w: ("Negotiate", pb.NegotiateRequest(
        request=_signed(w, "agreement", _request_body(w)))), INVALID,
        "expected a request document"),
    "negotiate with a document of an unknown type": (_simple("Negotiate", pb.NegotiateRequest(
        request=_doc("invoice", b"{}"))), INVALID, "unknown document type 'invoice'"),
    "negotiate with a type of 100 000 characters": (_simple("Negotiate", pb.NegotiateRequest(
        request=_doc("t" * 100_000, b"{}"))), INVALID, "unknown document type"),
    "negotiate with a 63-byte signature": (_simple("Negotiate", pb.NegotiateRequest(
        request=_doc("request", b"{}", ("n1", SIG[:63])))), INVALID, "malformed or repeated"),
    "negotiate with a 65-byte signature": (_simple("Negotiate", pb.NegotiateRequest(
        request=_doc("request", b"{}", ("n1", SIG + b"\x00")))), INVALID,
        "malformed or repeated"),
    "negotiate with an empty signature": (_simple("Negotiate", pb.NegotiateRequest(
        request=_doc("request", b"{}", ("n1", b"")))), INVALID, "malformed or repeated"),
    "negotiate with a signature given twice": (_simple("Negotiate", pb.NegotiateRequest(
        request=_doc("request", b"{}", ("n1", SIG), ("n1", SIG)))), INVALID,
        "malformed or repeated"),
    "negotiate with 10 000 signatures": (_simple("Negotiate", pb.NegotiateRequest(
        request=_doc("request", b"{}", *((f"n{i}", SIG) for i in range(10_000))))), INVALID,
        "at most 2"),
    "negotiate with an unsigned request": (_simple("Negotiate", pb.NegotiateRequest(
        request=_doc("request", b"{}"))), UNAUTH, "is not signed by"),
    "negotiate with a request signed by another key": (lambda w: ("Negotiate",
                                                                  pb.NegotiateRequest(
        request=_doc("request", b"{}", (w.consumer.home.node_id, SIG)))), UNAUTH,
        "does not verify"),
    # payloads that are not canonical JSON of a request
    "request payload with spaces": (_negotiate(lambda w: _signed(w, "request", None,
                                                                 raw=b'{"a": 1}')), INVALID,
                                    "not in canonical JSON form"),
    "request payload not UTF-8": (_negotiate(lambda w: _signed(w, "request", None,
                                                               raw=b'{"a":"\xff"}')), INVALID,
                                  "not valid UTF-8 JSON"),
    "request payload nested 100 000 deep": (_negotiate(lambda w: _signed(
        w, "request", None, raw=b"[" * 100_000 + b"]" * 100_000)), INVALID,
        "nested too deeply"),
    "request payload that is a list": (_negotiate(lambda w: _signed(w, "request", [1])),
                                       INVALID, "not a JSON object"),
    "request without its fields": (_negotiate(lambda w: _signed(w, "request", {})), INVALID,
                                   "exactly the request fields"),
    "request with max_reads as text": (_request(max_reads="10"), INVALID,
                                       "max_reads must be a whole number"),
    "request with max_reads as true": (_request(max_reads=True), INVALID,
                                       "max_reads must be a whole number"),
    "request with fields as text": (_request(fields="company_id"), INVALID,
                                    "fields must be a list of names"),
    "request with onward_transfer as 1": (_request(onward_transfer=1), INVALID,
                                          "onward_transfer must be true or false"),
    "request with an id holding a slash": (_request(request_id="req/1"), INVALID,
                                           "is not a valid id"),
    "request naming another provider": (_request(provider="n" + "0" * 32), DENIED,
                                        "names other nodes"),
    "request for an offer id with path separators": (_request(offer_id="../../offers"),
                                                     DENIED, "no offer"),
    "request for an offer id of 100 000 characters": (_request(offer_id="o" * 100_000),
                                                      DENIED, "no offer"),
    # countersignatures
    "countersign a request document": (lambda w: ("Countersign", pb.CountersignRequest(
        agreement=_signed(w, "request", _request_body(w)))), INVALID,
        "expected an agreement document"),
    "countersign an agreement of no fields": (lambda w: ("Countersign", pb.CountersignRequest(
        agreement=_signed(w, "agreement", {"agreement_id": "agr-1"}))), INVALID,
        "exactly the agreement fields"),
    "countersign with an empty document": (_simple("Countersign", pb.CountersignRequest()),
                                           INVALID, "the agreement is missing"),
    # receipts
    "receipt of the wrong type": (lambda w: ("SubmitReceipt", pb.ReceiptRequest(
        receipt=_signed(w, "revocation", _receipt_body(w)))), INVALID,
        "expected a destruction receipt"),
    "receipt without a document": (_simple("SubmitReceipt", pb.ReceiptRequest()), INVALID,
                                   "the receipt is missing"),
    "receipt without its fields": (lambda w: ("SubmitReceipt", pb.ReceiptRequest(
        receipt=_signed(w, "destruction-receipt", {"receipt_id": "rcp-1"}))), INVALID,
        "does not have the receipt fields"),
    "receipt with an unknown reason": (_receipt(reason="lost"), INVALID,
                                       "does not have the receipt fields"),
    "receipt with deliveries as text": (_receipt(deliveries="all"), INVALID,
                                        "does not have the receipt fields"),
    "receipt for an agreement that does not exist": (_receipt(agreement_id="agr-0"),
                                                     NOT_FOUND, "no agreement 'agr-0'"),
    "receipt naming another consumer": (lambda w: _receipt(consumer="n" + "0" * 32)(w),
                                        DENIED, "which is not with cons"),
    "receipt signed by the provider": (lambda w: ("SubmitReceipt", pb.ReceiptRequest(
        receipt=_signed(w, "destruction-receipt", _receipt_body(w), by="provider"))), UNAUTH,
        "is not signed by"),
    # revocations (the provider calls the consumer)
    "revocation of the wrong type": (lambda w: ("Revoked", pb.RevocationNotice(
        revocation=_signed(w, "agreement", {}, by="provider"))), INVALID,
        "expected a revocation"),
    "revocation without its agreement": (_revocation(agreement_id=["agr"]), INVALID,
                                         "lacks its agreement or time"),
    "revocation with its time as text": (_revocation(revoked_at="now"), INVALID,
                                         "lacks its agreement or time"),
    "revocation of an agreement that does not exist": (_revocation(agreement_id="agr-0"),
                                                       NOT_FOUND, "no agreement 'agr-0'"),
    "revocation naming another consumer": (_revocation(consumer="n" + "0" * 32), DENIED,
                                           "is not with prov"),
    # checkpoints
    "checkpoint that is no signed note": (_simple("ExchangeCheckpoints",
                                                  pb.CheckpointExchangeRequest(
                                                      checkpoint="hello")), INVALID,
                                          "blank line"),
    "checkpoint with a control character": (_simple("ExchangeCheckpoints",
                                                    pb.CheckpointExchangeRequest(
                                                        checkpoint="a\x07\n\n")), INVALID,
                                            "control character"),
    "checkpoint signed by another key": (_stranger_checkpoint, UNAUTH,
                                         "expected a signature by a known key"),
    "checkpoint of a size of 5000 digits": (_checkpoint("9" * 5000), INVALID, "size"),
    "checkpoint of size 2^64": (_checkpoint(str(2**64)), INVALID, "size"),
    "checkpoint of size 2^63": (_checkpoint(str(2**63)), INVALID, "size"),
    "checkpoint of size with a leading zero": (_checkpoint("07"), INVALID, "leading zeros"),
}


@pytest.mark.parametrize(("build", "status", "words"), list(SIGNED_CASES.values()),
                         ids=list(SIGNED_CASES))
def test_signed_hostile_requests_are_refused(world: World, build: Build,
                                             status: grpc.StatusCode, words: str) -> None:
    name, request = build(world)
    service, method_name, _ = _typical(world)[name]
    target = _target(world, name)
    watch = Watch(target)

    error = rpc_error(world.call, service, method_name, request,
                      by="provider" if name == "Revoked" else "consumer")

    assert error.code() == status, error.details()
    assert words in (error.details() or ""), error.details()
    assert len(error.details() or "") <= MAX_DETAILS
    assert dict(error.trailing_metadata() or ()).get(ERROR_KEY), "the error code is missing"
    watch.assert_unchanged(NEGOTIATION_REFUSAL_KINDS)
    world.assert_serving(target)


def test_regression_refusal_quoting_100k_characters_keeps_its_status(world: World) -> None:
    """A refusal quotes what it refuses: "no offer 'ooo…' is open to domain …" grew with the
    offer id, and gRPC, finding the details beyond the caller's 8 KiB metadata limit,
    replaced the whole status with RESOURCE_EXHAUSTED. Details are now bounded."""
    _, request = _request(offer_id="o" * 100_000)(world)
    watch = Watch(world.provider)

    error = rpc_error(world.call, "Negotiation", "Negotiate", request)

    assert error.code() == DENIED, (error.code(), error.details())
    assert dict(error.trailing_metadata() or ())[ERROR_KEY] == "domain_refused"
    assert len(error.details() or "") <= MAX_DETAILS and "no offer 'ooo" in error.details()
    watch.assert_unchanged(NEGOTIATION_REFUSAL_KINDS)
    world.assert_serving()


# ---- messages beyond the node's size limit --------------------------------------------------
OVERSIZED: dict[str, Callable[[World], tuple[str, Message]]] = {
    "a request id of 2 MiB": _simple("RequestStatus", pb.RequestStatusRequest(
        request_id="r" * (2 << 20))),
    "a document payload of 2 MiB": _simple("Negotiate", pb.NegotiateRequest(
        request=_doc("request", b"{" * (2 << 20)))),
    "a consistency proof of 40 000 hashes": _simple("ExchangeCheckpoints",
                                                    pb.CheckpointExchangeRequest(
                                                        consistency=[bytes(32)] * 40_000)),
}


@pytest.mark.parametrize("build", list(OVERSIZED.values()), ids=list(OVERSIZED))
def test_messages_beyond_max_message_bytes_are_refused(world: World, build: Build) -> None:
    name, request = build(world)
    assert request.ByteSize() > world.provider.home.config.max_message_bytes
    watch = Watch(world.provider)
    nonces = state(world.provider.path, volatile=())["seen_nonces"]

    error = rpc_error(_send_raw, world, name, request.SerializeToString(), request)

    assert error.code() == EXHAUSTED
    assert "larger than max" in (error.details() or "")
    assert watch.assert_unchanged() == []  # refused by gRPC before any of our code
    assert state(world.provider.path, volatile=())["seen_nonces"] == nonces
    world.assert_serving()


# ---- huge lists, within the size limit ---------------------------------------------------------
def test_regression_request_of_sixty_thousand_fields(world: World) -> None:
    """Regression: the evaluator counted repeated fields with list.count, O(n^2): a request
    of 60 000 field names held a server thread for minutes."""
    fields = [f"f{i}" for i in range(60_000)]
    body = _request_body(world, request_id="req-" + "d" * 32, fields=fields)
    request = pb.NegotiateRequest(request=_signed(world, "request", body))
    assert request.ByteSize() < world.provider.home.config.max_message_bytes
    size = audit_size(world.provider.path)

    answer = pb.NegotiateResponse.FromString(
        world.call("Negotiation", "Negotiate", request))  # type: ignore[arg-type]

    assert answer.state == pb.REQUEST_STATE_REJECTED
    assert "are not in the offer" in answer.reason and len(answer.reason) < 2000
    assert [e.kind for e in audit_since(world.provider.path, size)] == [
        "negotiation.requested", "negotiation.decided"]
    world.assert_serving()


def test_a_consistency_proof_of_thirty_thousand_hashes_is_refused(world: World) -> None:
    """A proof far longer than any tree needs, from the checkpoint the provider holds."""
    held = _held_size(world)
    name, request = _checkpoint(str(held + 1))(world)
    request.cosigned_size = held  # type: ignore[attr-defined]
    request.consistency.extend([bytes(32)] * 30_000)  # type: ignore[attr-defined]
    watch = Watch(world.provider)

    error = rpc_error(world.call, "Audit", "ExchangeCheckpoints", request)

    assert error.code() == DENIED and "hashes; found 30000" in (error.details() or "")
    entries = watch.assert_unchanged()
    assert [e.kind for e in entries] == ["checkpoint.refused"]
    world.assert_serving()


def _held_size(world: World) -> int:
    """The size of the consumer's newest checkpoint the provider holds (from the exchanges)."""
    conn = read_db(world.provider.path)
    try:
        size = conn.execute("SELECT max(size) FROM audit_peer_checkpoints WHERE peer_id = ?",
                            (world.consumer.home.node_id,)).fetchone()[0]
    finally:
        conn.close()
    assert size, "the world's negotiation and fetch exchanged checkpoints"
    return int(size)


# ---- too many concurrent streams from one peer ------------------------------------------------
def test_streams_beyond_max_streams_per_peer_are_refused(world: World) -> None:
    """The limit holds while streams are open; closing one makes room again.

    Each open Fetch is held by a client that reads nothing: with a small HTTP/2 window the
    provider cannot send past the first envelope, so the stream stays open.
    """
    limit = world.provider.home.config.max_streams_per_peer
    method = method_path("Transfer", "Fetch")
    request = pb.FetchRequest(agreement_id=world.agreement_id)
    options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]
    channels = [grpc.insecure_channel(world.provider.home.config.listen, options=options)
                for _ in range(limit)]
    held = []
    try:
        for channel in channels:
            stream = channel.unary_stream(method)(request.SerializeToString(),
                                                   metadata=world.signed(method, request),
                                                   timeout=TIMEOUT_S)
            assert pb.DeliveryFrame.FromString(next(stream)).HasField("start")
            held.append(stream)
        size = audit_size(world.provider.path)

        error = rpc_error(world.call, "Transfer", "Fetch", request)

        assert error.code() == EXHAUSTED
        assert f"already has {limit} open streams, the limit" in (error.details() or "")
        # (the held streams may still log the envelopes they managed to send)
        refusals = [e.body for e in audit_since(world.provider.path, size)
                    if e.kind == "call.refused"]
        assert [(r["reason"], r["method"]) for r in refusals] == [("too_many_streams", method)]
        # unary calls are no streams: the node still answers them
        world.assert_serving()
    finally:
        for stream in held:
            stream.cancel()
        for channel in channels:
            channel.close()
    _wait_for_a_stream(world, request)


def _wait_for_a_stream(world: World, request: pb.FetchRequest) -> None:
    """Once the held streams are cancelled, a fetch is served again (within a generous bound)."""
    done = threading.Event()
    for _ in range(100):
        try:
            frames = world.call("Transfer", "Fetch", request)
        except grpc.RpcError as e:
            assert isinstance(e, grpc.Call) and e.code() == EXHAUSTED, e
            done.wait(0.1)
            continue
        assert pb.DeliveryFrame.FromString(frames[-1]).HasField("end")  # type: ignore[index]
        return
    raise AssertionError("the stream slots were never given back")


def test_concurrent_garbage_from_many_threads_leaves_the_node_serving(world: World) -> None:
    """Forty callers at once, each sending undecodable bytes, then one legitimate call."""
    typical = _typical(world)["RequestStatus"][2]
    outcomes: list[grpc.StatusCode] = []
    lock = threading.Lock()

    def attack() -> None:
        try:
            _send_raw(world, "RequestStatus", b"\xff" * 16, typical)
        except grpc.RpcError as e:
            with lock:
                outcomes.append(e.code())  # type: ignore[attr-defined]

    threads = [threading.Thread(target=attack) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [INVALID] * 40
    world.assert_serving()


def test_the_cases_leave_the_agreement_usable(world: World) -> None:
    """After every hostile call above, the consumer still fetches and the audit log verifies."""
    from connector.consumer import fetch

    result = fetch(world.consumer.home, world.agreement_id)
    assert result.rows == 3000
    entries = [json.loads(e.encode()) for e in audit_since(world.provider.path, 0)]
    assert entries and all(e["node"] == world.provider.home.node_id for e in entries)
