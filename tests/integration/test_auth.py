"""The interceptor in front of every service, driven over a real gRPC server on loopback.

Calls are built by hand (raw channel, hand-made ts-* headers) so each refusal can be
provoked exactly. Every refusal must come back with the right status code and a reason,
leave one ``call.refused`` audit entry, and change nothing else — not even the table of
seen nonces.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from connector.auth import NODE, NONCE, SIGNATURE, TIME, authenticated_channel, call_bytes
from connector.pb import trustspace_pb2 as pb
from connector.pb import trustspace_pb2_grpc as rpc
from connector.server import create_server
from connector.status import ERROR_KEY
from node.canonical import b64
from node.config import Config
from node.home import Home
from node.identity import NodeCard, NodeKeys, SignedCard
from node.peers import add_peer, remove_peer
from tests.node_db import audit_since, audit_size, state

LIST_OFFERS = "/trustspace.v1.Catalog/ListOffers"
REQUEST_STATUS = "/trustspace.v1.Negotiation/RequestStatus"
FETCH = "/trustspace.v1.Transfer/Fetch"
SKEW_MS = 300_000  # the default clock skew
TIMEOUT_S = 10
Metadata = list[tuple[str, str]]


@dataclass
class Caller:
    keys: NodeKeys
    name: str
    domain: str

    @property
    def node_id(self) -> str:
        return self.keys.node_id

    def signed_card(self) -> SignedCard:
        card = NodeCard.issue(self.keys, self.name, self.domain, "127.0.0.1:1")
        return SignedCard.create(self.keys, card)


def make_caller(name: str, domain: str) -> Caller:
    return Caller(NodeKeys.generate(), name, domain)


def headers(caller: Caller, audience: str, method: str, request: Message, *,
            time_ms: int | None = None, nonce: str | None = None,
            signed_method: str | None = None, signed_request: Message | None = None,
            signed_by: NodeKeys | None = None, claimed: str | None = None) -> Metadata:
    """The ts-* headers of a call; every part can be made to lie."""
    time_ms = int(time.time() * 1000) if time_ms is None else time_ms
    nonce = secrets.token_hex(16) if nonce is None else nonce
    payload = call_bytes(signed_method or method, caller.node_id, audience, time_ms, nonce,
                         signed_request if signed_request is not None else request)
    signature = (signed_by or caller.keys).sign("call", payload)
    return [(NODE, claimed or caller.node_id), (TIME, str(time_ms)), (NONCE, nonce),
            (SIGNATURE, b64(signature))]


class World:
    """A provider node serving in-process, and the callers it knows (or not)."""

    def __init__(self, root: Path) -> None:
        self.path = root / "provider"
        self.home = Home.init(self.path, Config(
            name="prov", domain="data.qingdao", listen="127.0.0.1:7001",
            accept_domains=("finance.qingdao",)))
        self.consumer = make_caller("cons", "finance.qingdao")
        self.outsider = make_caller("outsider", "other.qingdao")
        self.former = make_caller("former", "finance.qingdao")
        self.stranger = make_caller("stranger", "finance.qingdao")
        for caller in (self.consumer, self.outsider, self.former):
            add_peer(self.home, caller.signed_card())
        remove_peer(self.home, "former")
        self.server, self.port = create_server(self.home, "127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

    @property
    def node_id(self) -> str:
        return self.home.node_id

    def close(self) -> None:
        self.channel.close()
        self.server.stop(None).wait()
        self.home.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("auth"))
    try:
        yield made
    finally:
        made.close()


# ---- reading the provider's database from outside ----------------------------------------
# ---- calling ---------------------------------------------------------------------------------
def call(channel: grpc.Channel, method: str, request: Message, metadata: Metadata) -> Any:
    if method == LIST_OFFERS:
        return rpc.CatalogStub(channel).ListOffers(request, metadata=metadata, timeout=TIMEOUT_S)
    if method == REQUEST_STATUS:
        return rpc.NegotiationStub(channel).RequestStatus(request, metadata=metadata,
                                                          timeout=TIMEOUT_S)
    if method == FETCH:
        return list(rpc.TransferStub(channel).Fetch(request, metadata=metadata,
                                                    timeout=TIMEOUT_S))
    raise AssertionError(method)


def refused(channel: grpc.Channel, method: str, request: Message,
            metadata: Metadata) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(channel, method, request, metadata)
    return caught.value


# ---- the refusal table ---------------------------------------------------------------------
# Each case builds (method, request, metadata) against the world; a replay case first makes
# the call that it then replays.
Build = Callable[[World], tuple[str, Message, Metadata]]


def _ok(w: World, method: str = LIST_OFFERS, request: Message | None = None,
        **lies: Any) -> tuple[str, Message, Metadata]:
    request = pb.ListOffersRequest() if request is None else request
    return method, request, headers(w.consumer, w.node_id, method, request, **lies)


def _without(*names: str) -> Build:
    def build(w: World) -> tuple[str, Message, Metadata]:
        method, request, metadata = _ok(w)
        return method, request, [(k, v) for k, v in metadata if k not in names]
    return build


def _replace(name: str, value: str) -> Build:
    def build(w: World) -> tuple[str, Message, Metadata]:
        method, request, metadata = _ok(w)
        return method, request, [(k, value if k == name else v) for k, v in metadata]
    return build


def _as(caller: str, **lies: Any) -> Build:
    def build(w: World) -> tuple[str, Message, Metadata]:
        request = pb.ListOffersRequest()
        return LIST_OFFERS, request, headers(getattr(w, caller), w.node_id, LIST_OFFERS,
                                             request, **lies)
    return build


def _other_request(w: World) -> tuple[str, Message, Metadata]:
    return _ok(w, REQUEST_STATUS, pb.RequestStatusRequest(request_id="req-2"),
               signed_request=pb.RequestStatusRequest(request_id="req-1"))


def _other_method(w: World) -> tuple[str, Message, Metadata]:
    return _ok(w, signed_method="/trustspace.v1.Audit/ExchangeCheckpoints")


def _other_audience(w: World) -> tuple[str, Message, Metadata]:
    request = pb.ListOffersRequest()
    return LIST_OFFERS, request, headers(w.consumer, w.outsider.node_id, LIST_OFFERS, request)


def _wrong_key(w: World) -> tuple[str, Message, Metadata]:
    return _ok(w, signed_by=w.stranger.keys)


def _claims_another_peer(w: World) -> tuple[str, Message, Metadata]:
    """The consumer signs correctly but says it is the outsider."""
    return _ok(w, claimed=w.outsider.node_id)


def _dated(offset_ms: int) -> Build:
    def build(w: World) -> tuple[str, Message, Metadata]:
        return _ok(w, time_ms=int(time.time() * 1000) + offset_ms)
    return build


def _replayed(w: World) -> tuple[str, Message, Metadata]:
    method, request, metadata = _ok(w)
    call(w.channel, method, request, metadata)  # the original call is accepted
    return method, request, metadata


def _fetch(offset_ms: int | None) -> Build:
    """A Fetch (server-streaming) call: unsigned when ``offset_ms`` is None, else so dated."""
    def build(w: World) -> tuple[str, Message, Metadata]:
        request = pb.FetchRequest(agreement_id="agr-1")
        if offset_ms is None:
            return FETCH, request, []
        return FETCH, request, headers(w.consumer, w.node_id, FETCH, request,
                                       time_ms=int(time.time() * 1000) + offset_ms)
    return build


UNAUTH, DENIED = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED

# name: (build, status, reason code, words of the reason)
REFUSALS: dict[str, tuple[Build, grpc.StatusCode, str, str]] = {
    "unsigned call": (_without(NODE, TIME, NONCE, SIGNATURE), UNAUTH, "bad_signature",
                      "the call is not signed"),
    "no signature header": (_without(SIGNATURE), UNAUTH, "bad_signature", "not signed"),
    "no nonce header": (_without(NONCE), UNAUTH, "bad_signature", "not signed"),
    "empty node header": (_replace(NODE, ""), UNAUTH, "bad_signature", "not signed"),
    "timestamp not a number": (_replace(TIME, "soon"), UNAUTH, "bad_signature",
                               "ts-time or ts-nonce header is malformed"),
    "timestamp of 5000 digits": (_replace(TIME, "9" * 5000), UNAUTH, "bad_signature",
                                 "malformed"),
    "negative timestamp": (_replace(TIME, "-1"), UNAUTH, "bad_signature", "malformed"),
    "nonce too short": (_replace(NONCE, "abcd"), UNAUTH, "bad_signature", "malformed"),
    "nonce not lower-case hex": (_replace(NONCE, "0123456789ABCDEF0123456789ABCDEF"), UNAUTH,
                                 "bad_signature", "malformed"),
    "unknown peer": (_as("stranger"), UNAUTH, "unknown_peer", "is not a trusted peer"),
    "removed peer": (_as("former"), UNAUTH, "unknown_peer", "is not a trusted peer"),
    "signature not base64": (_replace(SIGNATURE, "not base64!"), UNAUTH, "bad_signature",
                             "call signature is not valid base64"),
    "signature of the wrong size": (_replace(SIGNATURE, b64(bytes(32))), UNAUTH,
                                    "bad_signature", "must be 64 bytes"),
    "signature by a key that is not the peer's": (_wrong_key, UNAUTH, "bad_signature",
                                                  "signature on the call from cons does not "
                                                  "verify"),
    "signature over another request": (_other_request, UNAUTH, "bad_signature",
                                       "does not verify"),
    "signature for another method": (_other_method, UNAUTH, "bad_signature",
                                     "does not verify"),
    "signature for another audience": (_other_audience, UNAUTH, "bad_signature",
                                       "does not verify"),
    "signed by one peer, claimed as another": (_claims_another_peer, UNAUTH, "bad_signature",
                                               "the call from outsider does not verify"),
    "stale timestamp": (_dated(-SKEW_MS - 60_000), UNAUTH, "stale_call",
                        "away from this node's clock; at most 300000 ms is accepted"),
    "timestamp in the future": (_dated(SKEW_MS + 60_000), UNAUTH, "stale_call",
                                "away from this node's clock"),
    "domain not accepted": (_as("outsider"), DENIED, "domain_refused",
                            "belongs to domain other.qingdao, which this node does not accept"),
    "replayed nonce": (_replayed, UNAUTH, "replayed_call", "reuses a nonce"),
    "stream call, unsigned": (_fetch(None), UNAUTH, "bad_signature", "not signed"),
    "stream call, stale": (_fetch(-SKEW_MS - 60_000), UNAUTH, "stale_call",
                           "away from this node's clock"),
}


@pytest.mark.parametrize(("build", "status", "reason", "words"), list(REFUSALS.values()),
                         ids=list(REFUSALS))
def test_refusals(world: World, build: Build, status: grpc.StatusCode, reason: str,
                  words: str) -> None:
    method, request, metadata = build(world)
    before, size = state(world.path), audit_size(world.path)

    error = refused(world.channel, method, request, metadata)

    # 1. the right status, a reason in the details, the error code in the trailers
    assert error.code() == status
    assert words in error.details()
    assert dict(error.trailing_metadata() or ())[ERROR_KEY] == reason
    # 2. exactly one audit entry, saying who was refused for what
    entries = audit_since(world.path, size)
    assert [(e.kind, e.body["method"], e.body["reason"]) for e in entries] == \
        [("call.refused", method, reason)]
    assert entries[0].body["caller"] == str(dict(metadata).get(NODE))[:40]
    assert words in entries[0].body["message"]
    # 3. nothing else changed: no peer, no nonce, no row anywhere
    assert state(world.path) == before


ACCEPTED = {
    "fresh call": 0,
    "dated just inside the skew, in the past": -SKEW_MS + 60_000,
    "dated just inside the skew, in the future": SKEW_MS - 60_000,
}


@pytest.mark.parametrize("offset_ms", list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_a_signed_call_from_a_trusted_peer_is_answered(world: World, offset_ms: int) -> None:
    method, request, metadata = _dated(offset_ms)(world)
    size = audit_size(world.path)
    nonces = state(world.path)["seen_nonces"]

    response = call(world.channel, method, request, metadata)

    assert isinstance(response, pb.ListOffersResponse)
    assert audit_since(world.path, size) == []
    after = state(world.path)["seen_nonces"]
    assert len(after) == len(nonces) + 1 and dict(metadata)[NONCE] in "".join(after)


def test_one_signed_call_sent_many_times_at_once_is_answered_once(world: World) -> None:
    method, request, metadata = _ok(world)
    size = audit_size(world.path)

    def attempt(_: int) -> str:
        try:
            call(world.channel, method, request, metadata)
            return "answered"
        except grpc.RpcError as e:
            return str(dict(e.trailing_metadata() or ()).get(ERROR_KEY))

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = sorted(pool.map(attempt, range(8)))
    assert outcomes == ["answered"] + ["replayed_call"] * 7
    assert [e.body["reason"] for e in audit_since(world.path, size)] == ["replayed_call"] * 7


def _add_card(domain: str) -> Callable[[World, Caller], None]:
    def change(w: World, caller: Caller) -> None:
        add_peer(w.home, Caller(caller.keys, caller.name, domain).signed_card())
    return change


def _remove(w: World, caller: Caller) -> None:
    remove_peer(w.home, caller.name)


# step: (what the operator does while the node runs, the reason of the next call or None)
PEER_CHANGES: dict[str, tuple[Callable[[World, Caller], None], str | None]] = {
    "added": (_add_card("finance.qingdao"), None),
    "removed": (_remove, "unknown_peer"),
    "re-added with a card of a refused domain": (_add_card("other.qingdao"), "domain_refused"),
    "removed again": (_remove, "unknown_peer"),
    "re-added with a card of an accepted domain": (_add_card("finance.qingdao"), None),
}


def test_a_peer_change_takes_effect_at_the_next_call(world: World) -> None:
    """Verified cards are cached per process; removing or re-adding a peer still counts."""
    caller = make_caller("returning", "finance.qingdao")
    for step, (change, reason) in PEER_CHANGES.items():
        change(world, caller)
        request = pb.ListOffersRequest()
        metadata = headers(caller, world.node_id, LIST_OFFERS, request)
        if reason is None:
            assert isinstance(call(world.channel, LIST_OFFERS, request, metadata),
                              pb.ListOffersResponse), step
        else:
            error = refused(world.channel, LIST_OFFERS, request, metadata)
            assert dict(error.trailing_metadata() or ()).get(ERROR_KEY) == reason, step


def open_server(path: Path) -> tuple[Home, grpc.Server, grpc.Channel]:
    """The provider as a fresh process would open it: new Home, new server, same database."""
    home = Home.open(path)
    server, port = create_server(home, "127.0.0.1:0")
    server.start()
    return home, server, grpc.insecure_channel(f"127.0.0.1:{port}")


def close_server(home: Home, server: grpc.Server, channel: grpc.Channel) -> None:
    channel.close()
    server.stop(None).wait()
    home.close()


def test_a_replay_is_refused_after_a_restart(world: World) -> None:
    home, server, channel = open_server(world.path)
    method, request, metadata = _ok(world)
    call(channel, method, request, metadata)
    close_server(home, server, channel)

    home, server, channel = open_server(world.path)  # the node restarted
    try:
        before, size = state(world.path), audit_size(world.path)
        error = refused(channel, method, request, metadata)
        assert error.code() == UNAUTH and "reuses a nonce" in error.details()
        assert [e.body["reason"] for e in audit_since(world.path, size)] == ["replayed_call"]
        assert state(world.path) == before
    finally:
        close_server(home, server, channel)


def test_the_clock_skew_is_configurable(world: World) -> None:
    config = world.path / "config.toml"
    original = config.read_text()
    assert "clock_skew_seconds = 300\n" in original
    config.write_text(original.replace("clock_skew_seconds = 300\n",
                                       "clock_skew_seconds = 10\n"))
    try:
        home, server, channel = open_server(world.path)
    finally:
        config.write_text(original)
    try:
        method, request, metadata = _dated(-60_000)(world)  # fine under the default skew
        error = refused(channel, method, request, metadata)
        assert error.code() == UNAUTH
        assert "at most 10000 ms is accepted" in error.details()
    finally:
        close_server(home, server, channel)


def test_calls_that_stream_requests_are_refused_not_let_through(world: World) -> None:
    """A client-streaming method could not be signed; the interceptor must fail closed."""
    home = Home.open(world.path)
    server, port = create_server(home, "127.0.0.1:0")
    reached: list[str] = []

    def chat(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        reached.append("handler")
        yield b"answer"

    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "test.Echo", {"Chat": grpc.stream_stream_rpc_method_handler(chat)}),))
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        size = audit_size(world.path)
        method, request, metadata = _ok(world)
        chat_call = channel.stream_stream("/test.Echo/Chat")
        with pytest.raises(grpc.RpcError) as caught:
            list(chat_call(iter([b"hello"]), metadata=metadata, timeout=TIMEOUT_S))
        assert caught.value.code() == UNAUTH
        assert "cannot be signed" in caught.value.details()
        assert reached == []
        assert [(e.kind, e.body["method"]) for e in audit_since(world.path, size)] == \
            [("call.refused", "/test.Echo/Chat")]
    finally:
        close_server(home, server, channel)


# ---- what answers without authentication -----------------------------------------------------
HEALTH = ["", "trustspace.v1.Catalog", "trustspace.v1.Negotiation", "trustspace.v1.Transfer",
          "trustspace.v1.Receipts", "trustspace.v1.Notifications", "trustspace.v1.Audit"]


@pytest.mark.parametrize("service", HEALTH, ids=[s or "the server" for s in HEALTH])
def test_health_answers_without_authentication(world: World, service: str) -> None:
    size = audit_size(world.path)
    response = health_pb2_grpc.HealthStub(world.channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT_S)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    assert audit_size(world.path) == size


def test_reflection_lists_every_service(world: World) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(world.channel)
    answers = list(stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=TIMEOUT_S))
    names = {s.name for s in answers[0].list_services_response.service}
    assert names >= {*HEALTH[1:], "grpc.health.v1.Health",
                     "grpc.reflection.v1alpha.ServerReflection"}


def test_an_unknown_method_is_unimplemented_and_not_recorded(world: World) -> None:
    size = audit_size(world.path)
    method = world.channel.unary_unary("/trustspace.v1.Catalog/Nothing")
    with pytest.raises(grpc.RpcError) as caught:
        method(b"", timeout=TIMEOUT_S)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert audit_size(world.path) == size


# ---- refusals after authentication ----------------------------------------------------------
def test_a_refusal_by_the_handler_is_recorded_once_with_its_reason(world: World) -> None:
    """Authenticated, then refused by what it asks for: recorded as call.refused, and
    nothing but that entry and the call's nonce is written."""
    request = pb.RequestStatusRequest(request_id="req-" + "f" * 32)  # no such request
    metadata = headers(world.consumer, world.node_id, REQUEST_STATUS, request)
    before, size = state(world.path), audit_size(world.path)

    error = refused(world.channel, REQUEST_STATUS, request, metadata)

    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert dict(error.trailing_metadata() or ())[ERROR_KEY] == "not_found"
    [entry] = audit_since(world.path, size)
    assert (entry.kind, entry.body["method"], entry.body["caller"], entry.body["reason"]) == (
        "call.refused", REQUEST_STATUS, world.consumer.node_id, "not_found")
    assert entry.body["message"] == error.details()
    after = state(world.path)
    assert len(after.pop("seen_nonces")) == len(before.pop("seen_nonces")) + 1
    assert after == before


def test_a_refusal_by_the_handler_of_a_stream_is_recorded_too(world: World) -> None:
    request = pb.FetchRequest(agreement_id="agr-" + "f" * 32)  # no such agreement
    metadata = headers(world.consumer, world.node_id, FETCH, request)
    size = audit_size(world.path)

    error = refused(world.channel, FETCH, request, metadata)

    assert dict(error.trailing_metadata() or ())[ERROR_KEY] == "contract_refused"
    assert [(e.kind, e.body["method"], e.body["reason"]) for e in audit_since(
        world.path, size)] == [("call.refused", FETCH, "contract_refused")]


def test_the_client_cannot_build_a_call_that_streams_requests(world: World) -> None:
    """Such a call could not be signed as one request, so the client refuses to make one."""
    channel = authenticated_channel(world.channel, world.consumer.keys, world.node_id)
    for build in (channel.stream_unary, channel.stream_stream):
        with pytest.raises(TypeError, match="cannot be signed"):
            build("/trustspace.v1.Catalog/ListOffers")
