"""Single-request calls are served one at a time, on one SQLite connection.

A node's calls are short and CPU-bound under one interpreter lock, and each of them writes
(at least the caller's nonce) under one write lock. Served side by side on gRPC's pool,
eight callers meant eight threads trading both locks, each with its own SQLite connection
whose page cache every write invalidated: a provider serving eight consumers at once spent
a tenth to a fifth more CPU per agreement (bench/negotiation.py). So a single-request call
takes the node's call slot (``Home.serving_call``) on the pool thread that received it,
and uses the slot's one warm connection. Streams (a delivery) do not take it, as they run
for as long as the consumer reads; nor do health and reflection, so a busy node still
answers them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from connector.auth import UNAUTHENTICATED_PREFIXES
from node.home import Home


class SerialCalls(grpc.ServerInterceptor):
    """Serves every authenticated single-request call in the node's call slot."""

    def __init__(self, home: Home) -> None:
        self._home = home

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None \
                or details.method.startswith(UNAUTHENTICATED_PREFIXES):
            return handler
        behavior = handler.unary_unary

        def in_call_slot(request: Any, context: grpc.ServicerContext) -> Any:
            with self._home.serving_call():
                return behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            in_call_slot, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
