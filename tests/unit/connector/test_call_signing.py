"""What a call signature covers, pinned by fixed-key vectors, and the one status mapping.

The call encoding is canonical JSON of method, caller, audience, time, nonce and the
request as protobuf's JSON mapping gives it (bytes in base64, 64-bit integers as text,
default values left out). A change here breaks every peer still running the old code,
so it must show up as a failing vector first.
"""

from __future__ import annotations

import pytest
from google.protobuf.message import Message
from grpc import StatusCode
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from connector.auth import NODE, NONCE, SIGNATURE, TIME, call_bytes, sign_call
from connector.pb import trustspace_pb2 as pb
from connector.status import status_of
from node.canonical import unb64
from node.errors import BadSignature, TrustspaceError, all_error_classes
from node.identity import NodeKeys, verify_signature

KEYS = NodeKeys(SigningKey(bytes(range(32))), PrivateKey(bytes(range(32, 64))),
                bytes(range(64, 96)))
AUDIENCE = "n" + "a" * 32
TIME_MS = 1700000000000
NONCE_HEX = "0123456789abcdef0123456789abcdef"

# method, request, canonical call bytes, signature hex
CALL_VECTORS: dict[str, tuple[str, Message, bytes, str]] = {
    "empty request": (
        "/trustspace.v1.Catalog/ListOffers", pb.ListOffersRequest(),
        b'{"audience":"naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","caller":"n56475aa75463474c0285df5dbf2bcab7",'
        b'"method":"/trustspace.v1.Catalog/ListOffers","nonce":"0123456789abcdef0123456789abcdef",'
        b'"request":{},"time":1700000000000}',
        "e72404e1db10f9211d7ebe5030d99a934b718fc3e77b996d158d2bb2d59fd6c5"
        "4e453fcfbf00962c1164be72c0acfab3a62fccd28b1e568361a1bf0f36ad4d0d",
    ),
    "nested message with bytes in base64": (
        "/trustspace.v1.Negotiation/Negotiate",
        pb.NegotiateRequest(request=pb.SignedDocument(
            type="request", payload=b'{"a":1}',
            signatures=[pb.Signature(node_id="n1", signature=b"\x00\xff")])),
        b'{"audience":"naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","caller":"n56475aa75463474c0285df5dbf2bcab7",'
        b'"method":"/trustspace.v1.Negotiation/Negotiate","nonce":"0123456789abcdef0123456789abcdef",'
        b'"request":{"request":{"payload":"eyJhIjoxfQ==","signatures":[{"node_id":"n1",'
        b'"signature":"AP8="}],"type":"request"}},"time":1700000000000}',
        "98ef37c35058b268383e16fbdd10146923f77efd3657e20487c65a17959699d1"
        "cb06791bc10ad124d891f9233cbfd2288954df6ff957c0a261d063166d94df0a",
    ),
    "64-bit integer as text, default field left out": (
        "/trustspace.v1.Transfer/Fetch",
        pb.FetchRequest(agreement_id="agr-1", from_sequence=5),
        b'{"audience":"naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","caller":"n56475aa75463474c0285df5dbf2bcab7",'
        b'"method":"/trustspace.v1.Transfer/Fetch","nonce":"0123456789abcdef0123456789abcdef",'
        b'"request":{"agreement_id":"agr-1","from_sequence":"5"},"time":1700000000000}',
        "0c0b7f1800a99d9ea79082fa5f8d0ca491121e057f7447d17d6b93c1"
        "1e21021d71f3f1b6e0f252c8121c9eff1bf1850ce46c594f5204d839f2b65a6e7a226609",
    ),
}


@pytest.mark.parametrize(("method", "request_", "payload", "signature"),
                         list(CALL_VECTORS.values()), ids=list(CALL_VECTORS))
def test_call_vectors(method: str, request_: Message, payload: bytes, signature: str) -> None:
    assert call_bytes(method, KEYS.node_id, AUDIENCE, TIME_MS, NONCE_HEX, request_) == payload
    assert KEYS.sign("call", payload).hex() == signature


def test_sign_call_gives_four_headers_that_verify() -> None:
    request = pb.FetchRequest(agreement_id="agr-1")
    headers = dict(sign_call(KEYS, AUDIENCE, "/trustspace.v1.Transfer/Fetch", request))
    assert set(headers) == {NODE, TIME, NONCE, SIGNATURE}
    assert headers[NODE] == KEYS.node_id
    assert headers[TIME].isdigit() and len(headers[NONCE]) == 32
    payload = call_bytes("/trustspace.v1.Transfer/Fetch", KEYS.node_id, AUDIENCE,
                         int(headers[TIME]), headers[NONCE], request)
    signature = unb64(headers[SIGNATURE], what="signature", size=64)
    verify_signature(KEYS.verify_key, "call", payload, signature, what="the call")
    with pytest.raises(BadSignature):  # a call signature is not a signature of anything else
        verify_signature(KEYS.verify_key, "node-card", payload, signature, what="the call")


def test_two_calls_never_share_a_nonce() -> None:
    nonces = {dict(sign_call(KEYS, AUDIENCE, "/m", pb.ListOffersRequest()))[NONCE]
              for _ in range(200)}
    assert len(nonces) == 200


STATUS = {
    "bad_input": StatusCode.INVALID_ARGUMENT,
    "refused": StatusCode.PERMISSION_DENIED,
    "unauthenticated": StatusCode.UNAUTHENTICATED,
    "not_found": StatusCode.NOT_FOUND,
    "conflict": StatusCode.ALREADY_EXISTS,
    "unavailable": StatusCode.UNAVAILABLE,
    "findings": StatusCode.FAILED_PRECONDITION,
    "internal": StatusCode.INTERNAL,
}
ERRORS = sorted(all_error_classes().items())


@pytest.mark.parametrize("error", [cls for _, cls in ERRORS], ids=[code for code, _ in ERRORS])
def test_every_error_has_one_status(error: type[TrustspaceError]) -> None:
    assert status_of(error("x")) == STATUS[error.kind]


AUTH_REFUSALS = {
    "bad_signature": StatusCode.UNAUTHENTICATED,
    "unknown_peer": StatusCode.UNAUTHENTICATED,
    "stale_call": StatusCode.UNAUTHENTICATED,
    "replayed_call": StatusCode.UNAUTHENTICATED,
    "domain_refused": StatusCode.PERMISSION_DENIED,
}


@pytest.mark.parametrize(("code", "status"), list(AUTH_REFUSALS.items()), ids=list(AUTH_REFUSALS))
def test_the_interceptors_refusals_map_to_grpc_auth_codes(code: str, status: StatusCode) -> None:
    assert status_of(all_error_classes()[code]("x")) == status
