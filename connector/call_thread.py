"""One thread for the node's single-request calls.

A node's calls are short and CPU-bound under one interpreter lock, and every one of them
writes (at least the caller's nonce) under one write lock. Run on gRPC's pool, eight callers
at once meant eight threads trading both locks and eight SQLite connections whose caches
each write invalidated: a provider serving eight consumers at once spent a tenth to a fifth
more CPU per agreement (bench/negotiation.py). So single-request calls run one after
another on one thread with one warm connection; gRPC's pool threads only hand them over and
wait. Streams (a delivery) keep a pool thread each, as they run for as long as the consumer
reads; health and reflection stay on the pool, so a busy node still answers them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from connector.auth import UNAUTHENTICATED_PREFIXES


class CallThread(grpc.ServerInterceptor):
    """Hands every authenticated single-request call to the node's call thread."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trustspace-calls")

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None \
                or details.method.startswith(UNAUTHENTICATED_PREFIXES):
            return handler
        behavior = handler.unary_unary

        def on_call_thread(request: Any, context: grpc.ServicerContext) -> Any:
            # The handler sees this call's context variables (its authenticated caller).
            run = contextvars.copy_context().run
            return self._thread.submit(run, behavior, request, context).result()

        return grpc.unary_unary_rpc_method_handler(
            on_call_thread, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
