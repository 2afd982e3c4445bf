"""The one mapping between product errors and gRPC status codes, both directions.

A refusal crosses the wire as a status code, the error's one-sentence message as details,
and its machine-readable code in the ``ts-error`` trailing metadata, so the caller raises
the same error class the peer raised.
"""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc

from node.errors import PeerUnavailable, TrustspaceError, all_error_classes

ERROR_KEY = "ts-error"
MAX_DETAILS = 500
"""Characters of a refusal's message sent as details. A message may quote what the caller
sent; gRPC percent-encodes details into a trailer, and a trailer beyond the peer's metadata
limit (8 KiB by default) replaces the whole status with RESOURCE_EXHAUSTED."""
log = logging.getLogger("trustspace.connector")

_STATUS = {
    "bad_input": grpc.StatusCode.INVALID_ARGUMENT,
    "refused": grpc.StatusCode.PERMISSION_DENIED,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "conflict": grpc.StatusCode.ALREADY_EXISTS,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "findings": grpc.StatusCode.FAILED_PRECONDITION,
    "internal": grpc.StatusCode.INTERNAL,
}


def status_of(error: TrustspaceError) -> grpc.StatusCode:
    return _STATUS[error.kind]


def details_of(error: TrustspaceError) -> str:
    """The refusal's sentence as details: one line, at most :data:`MAX_DETAILS` characters."""
    text = " ".join(error.message.split())
    return text if len(text) <= MAX_DETAILS else text[:MAX_DETAILS - 1] + "\u2026"


def abort(context: grpc.ServicerContext, error: TrustspaceError) -> NoReturn:
    context.set_trailing_metadata(((ERROR_KEY, error.code),))
    context.abort(status_of(error), details_of(error))
    raise AssertionError("unreachable")  # context.abort raises


def abort_internal(context: grpc.ServicerContext, method: str, exc: BaseException) -> NoReturn:
    log.error("internal error in %s: %s", method, type(exc).__name__, exc_info=exc)
    context.abort(grpc.StatusCode.INTERNAL, f"the node failed to handle {method}; "
                  "its operator can see why in the node's log")
    raise AssertionError("unreachable")


def error_from_rpc(exc: grpc.RpcError, peer: str) -> TrustspaceError:
    """The product error a peer's status stands for."""
    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = exc.details() if isinstance(exc, grpc.Call) else None
    trailers = dict(exc.trailing_metadata() or ()) if isinstance(exc, grpc.Call) else {}
    error_code = trailers.get(ERROR_KEY)
    if isinstance(error_code, str):
        cls = all_error_classes().get(error_code, TrustspaceError)
        return cls(f"{peer} refused: {details}")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return PeerUnavailable(f"{peer} did not answer ({(details or code.name).strip()})")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return PeerUnavailable(f"{peer} refused the message size or load: {details}")
    name = code.name if code is not None else "unknown"
    return TrustspaceError(f"{peer} failed with {name}: {details}")
