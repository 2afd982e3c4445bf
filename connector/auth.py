"""Authenticated calls between nodes.

Every call carries the caller's node id, a timestamp, a nonce and an Ed25519 signature
over the canonical call encoding: method, caller, audience (the callee's node id), time,
nonce and the canonical JSON form of the request. The server interceptor checks, in
order, before any handler runs:

1. the call carries all four headers, and its request is a well-formed protobuf message
   (a signature can only cover a request that parses);
2. the caller is a trusted (not removed) peer;
3. the signature verifies against the peer's key, for this node as audience;
4. the timestamp is within the configured clock skew;
5. the peer's domain is one this node accepts;
6. the nonce was never seen from this peer (nonces are stored, so this holds across restarts);
7. the peer has fewer open streams than its limit.

Any failure is refused with UNAUTHENTICATED or PERMISSION_DENIED and a reason, recorded in
the audit log, and changes nothing else.
"""

from __future__ import annotations

import contextvars
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError, Message

from connector.status import abort, abort_internal
from node.canonical import b64, canonical_json, unb64
from node.errors import (
    BadSignature,
    DomainRefused,
    MalformedMessage,
    PeerUnavailable,
    ReplayedCall,
    StaleCall,
    TrustspaceError,
)
from node.home import Home
from node.identity import NodeKeys, verify_signature
from node.peers import Peer, peer_by_id

NODE, TIME, NONCE, SIGNATURE = "ts-node", "ts-time", "ts-nonce", "ts-signature"
UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
NONCE_KEEP_FACTOR = 2  # nonces are kept twice the skew window, then pruned
TIME_DIGITS = 16  # unix milliseconds stay below 10**16 for the next 300 000 years

_caller: contextvars.ContextVar[Peer] = contextvars.ContextVar("caller")


class _Undecodable:
    """What a request that does not parse becomes, so the interceptor can refuse it itself.

    Left to gRPC, a request that fails to parse ends as INTERNAL ("Exception deserializing
    request!") with a traceback in the node's log, and never reaches the audit log.
    """

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    type_name = getattr(getattr(deserializer, "__self__", None), "__name__", "request")

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return _Undecodable(type_name)

    return parse


def _encoded_or(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """A streamed response a handler already wrote in wire format goes out as it is (a
    delivery's envelope frames: see connector/convert.py); any other is serialized."""
    if serializer is None:
        return None

    def serialize(response: Any) -> bytes:
        return response if isinstance(response, bytes) else serializer(response)

    return serialize


def current_caller() -> Peer:
    """The authenticated peer of the call being handled."""
    return _caller.get()


def call_bytes(method: str, caller: str, audience: str, time_ms: int, nonce: str,
               request: Message) -> bytes:
    """The canonical encoding of a call; the only thing a call signature covers."""
    body = MessageToDict(request, preserving_proto_field_name=True)
    return canonical_json({"method": method, "caller": caller, "audience": audience,
                           "time": time_ms, "nonce": nonce, "request": body})


def sign_call(keys: NodeKeys, audience: str, method: str,
              request: Message) -> list[tuple[str, str]]:
    time_ms = int(time.time() * 1000)
    nonce = secrets.token_hex(16)
    payload = call_bytes(method, keys.node_id, audience, time_ms, nonce, request)
    return [(NODE, keys.node_id), (TIME, str(time_ms)), (NONCE, nonce),
            (SIGNATURE, b64(keys.sign("call", payload)))]


class _SignedMethod:
    """One method of a peer's service whose every call carries this node's signature."""

    def __init__(self, call: Any, keys: NodeKeys, audience: str, method: str) -> None:
        self._call, self._keys, self._audience, self._method = call, keys, audience, method

    def __call__(self, request: Message, timeout: float | None = None,
                 metadata: Any = None, **options: Any) -> Any:
        signed = [*(metadata or ()), *sign_call(self._keys, self._audience, self._method, request)]
        return self._call(request, timeout=timeout, metadata=signed, **options)


class _SignedChannel:
    """The channel the stubs of a peer's services are built on: it hands out methods that
    sign each call. (A gRPC client interceptor does the same at about a fifth more CPU a
    call, for wrappers this node does not need.)"""

    def __init__(self, channel: grpc.Channel, keys: NodeKeys, audience: str) -> None:
        self._channel, self._keys, self._audience = channel, keys, audience

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> _SignedMethod:
        return _SignedMethod(self._channel.unary_unary(method, *args, **kwargs), self._keys,
                             self._audience, method)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> _SignedMethod:
        return _SignedMethod(self._channel.unary_stream(method, *args, **kwargs), self._keys,
                             self._audience, method)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"{method} streams its requests, which cannot be signed as one call")

    stream_stream = stream_unary


def authenticated_channel(channel: grpc.Channel, keys: NodeKeys, audience: str) -> Any:
    """``channel`` with every call signed for ``audience``, for building service stubs."""
    return _SignedChannel(channel, keys, audience)


class ServerAuth(grpc.ServerInterceptor):
    """Refuses every call that is not from a trusted, fresh, correctly signed peer."""

    def __init__(self, home: Home) -> None:
        self._home = home
        self._streams: Counter[str] = Counter()
        self._streams_lock = threading.Lock()

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        method: str = details.method
        if handler is None or method.startswith(UNAUTHENTICATED_PREFIXES):
            return handler
        metadata = dict(details.invocation_metadata or ())
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            def unary(request: Message, context: grpc.ServicerContext) -> Any:
                peer = self._authenticate(method, metadata, request, context)
                token = _caller.set(peer)
                try:
                    return inner(request, context)
                except TrustspaceError as e:
                    self._refused_by_handler(method, metadata, context, e)
                except Exception as e:  # noqa: BLE001 — a handler bug must not leak details
                    if context.code() is not None:  # context.abort() already ran
                        raise
                    abort_internal(context, method, e)
                finally:
                    _caller.reset(token)

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer)
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            def stream(request: Message, context: grpc.ServicerContext) -> Iterator[Any]:
                peer = self._authenticate(method, metadata, request, context)
                self._open_stream(method, peer, context)
                token = _caller.set(peer)
                try:
                    yield from inner_stream(request, context)
                except TrustspaceError as e:
                    self._refused_by_handler(method, metadata, context, e)
                except Exception as e:  # noqa: BLE001
                    if context.code() is not None:
                        raise
                    abort_internal(context, method, e)
                finally:
                    _caller.reset(token)
                    with self._streams_lock:
                        self._streams[peer.node_id] -= 1

            return grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=_encoded_or(handler.response_serializer))
        return self._refuse_streamed_requests(method, handler)

    def _open_stream(self, method: str, peer: Peer, context: grpc.ServicerContext) -> None:
        limit = self._home.config.max_streams_per_peer
        with self._streams_lock:
            full = self._streams[peer.node_id] >= limit
            if not full:
                self._streams[peer.node_id] += 1
        if full:
            message = f"{peer.name} already has {limit} open streams, the limit"
            try:
                self._home.record("call.refused", {
                    "method": method, "caller": peer.node_id, "reason": "too_many_streams",
                    "message": message})
            finally:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, message)

    def _refuse_streamed_requests(self, method: str, handler: Any) -> Any:
        """A call whose request is a stream cannot be signed as one request: fail closed."""
        def refuse(requests: Any, context: grpc.ServicerContext) -> Any:
            metadata = dict(context.invocation_metadata() or ())
            self._refuse(method, metadata, context, BadSignature(
                "calls that stream requests cannot be signed; this node accepts only "
                "single-request calls"))

        factory = grpc.stream_stream_rpc_method_handler if handler.stream_stream is not None \
            else grpc.stream_unary_rpc_method_handler
        return factory(refuse, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)

    def _authenticate(self, method: str, metadata: dict[str, Any], request: Message,
                      context: grpc.ServicerContext) -> Peer:
        try:
            return self._check(method, metadata, request)
        except TrustspaceError as e:
            self._refuse(method, metadata, context, e)

    def _refuse(self, method: str, metadata: dict[str, Any], context: grpc.ServicerContext,
                error: TrustspaceError) -> NoReturn:
        """Record the refusal in the audit log, then abort the call with its reason."""
        try:
            self._home.record("call.refused", {
                "method": method, "caller": str(metadata.get(NODE))[:40], "reason": error.code,
                "message": error.message[:200]})
        finally:
            abort(context, error)

    def _refused_by_handler(self, method: str, metadata: dict[str, Any],
                            context: grpc.ServicerContext, error: TrustspaceError) -> NoReturn:
        """A refusal after authentication: recorded as ``call.refused`` too, unless the
        handler recorded it under a kind of its own."""
        if error.recorded:
            abort(context, error)
        self._refuse(method, metadata, context, error)

    def _check(self, method: str, metadata: dict[str, Any], request: Message) -> Peer:
        home = self._home
        # 1. all four headers, well-formed (a malformed one cannot be part of a signed call)
        values = [metadata.get(k) for k in (NODE, TIME, NONCE, SIGNATURE)]
        if not all(isinstance(v, str) and v for v in values):
            raise BadSignature("the call is not signed: it lacks the ts-node, ts-time, "
                               "ts-nonce and ts-signature headers")
        node_id, time_text, nonce, signature_text = (str(v) for v in values)
        if isinstance(request, _Undecodable):
            raise MalformedMessage(f"the request is not a well-formed {request.type_name} "
                                   "protobuf message")
        if not (time_text.isascii() and time_text.isdigit() and len(time_text) <= TIME_DIGITS) \
                or len(nonce) != 32 or not _is_hex(nonce):
            raise BadSignature("the call's ts-time or ts-nonce header is malformed: expected "
                               "unix milliseconds and 32 lower-case hex digits")
        # 2. a trusted peer
        peer = peer_by_id(home, node_id)
        # 3. signature over the canonical call, addressed to this node
        payload = call_bytes(method, node_id, home.node_id, int(time_text), nonce, request)
        try:
            signature = unb64(signature_text, what="the call signature", size=64)
        except MalformedMessage as e:
            raise BadSignature(e.message) from None
        verify_signature(peer.card.verify_key, "call", payload, signature,
                         what=f"the call from {peer.name}")
        # 4. fresh
        now = int(time.time() * 1000)
        skew_ms = home.config.clock_skew_seconds * 1000
        if abs(now - int(time_text)) > skew_ms:
            raise StaleCall(f"the call from {peer.name} is dated {abs(now - int(time_text))} ms "
                            f"away from this node's clock; at most {skew_ms} ms is accepted")
        # 5. a domain this node accepts
        accepted = home.config.accept_domains
        if "*" not in accepted and peer.card.domain not in accepted:
            raise DomainRefused(f"{peer.name} belongs to domain {peer.card.domain}, which this "
                                f"node does not accept")
        # 6. never seen before (recorded, so this holds across restarts)
        self._remember_nonce(peer, nonce, int(time_text), now - NONCE_KEEP_FACTOR * skew_ms)
        return peer

    def _remember_nonce(self, peer: Peer, nonce: str, time_ms: int, prune_before: int) -> None:
        with self._home.change() as change:
            seen = change.conn.execute(
                "INSERT OR IGNORE INTO seen_nonces (node_id, nonce, seen_at) VALUES (?, ?, ?)",
                (peer.node_id, nonce, time_ms)).rowcount == 0
            if not seen:
                change.conn.execute("DELETE FROM seen_nonces WHERE seen_at < ?", (prune_before,))
        if seen:
            raise ReplayedCall(f"the call from {peer.name} reuses a nonce; replayed calls are "
                               "refused")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


__all__ = ["authenticated_channel", "current_caller", "ServerAuth", "sign_call",
           "PeerUnavailable", "BadSignature"]
