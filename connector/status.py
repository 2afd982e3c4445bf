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


def abort(context: grpc.ServicerContext, error: TrustspaceError) -> NoReturn:
    context.set_trailing_metadata(((ERROR_KEY, error.code),))
    context.abort(status_of(error), error.message)
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
