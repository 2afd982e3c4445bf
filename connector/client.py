"""A channel to one trusted peer, with every call signed by this node's key.

Errors a peer returns come back as the product error it raised (connector/status.py), so
callers handle refusals from a peer exactly like local ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc

from connector.auth import authenticated_channel
from connector.pb import trustspace_pb2_grpc as rpc
from connector.status import error_from_rpc
from node.home import Home
from node.peers import Peer

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 15.0


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.enable_retries", 0)]


def open_channel(home: Home, address: str) -> grpc.Channel:
    options = channel_options(home.config.max_message_bytes)
    if not home.config.tls_peer_ca:
        return grpc.insecure_channel(address, options=options)
    ca = Path(home.config.tls_peer_ca).read_bytes()
    key = Path(home.config.tls_key).read_bytes() if home.config.tls_key else None
    cert = Path(home.config.tls_cert).read_bytes() if home.config.tls_cert else None
    credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                               certificate_chain=cert)
    return grpc.secure_channel(address, credentials, options=options)


class PeerClient:
    """Stubs for every service of one peer, over an authenticated channel."""

    def __init__(self, home: Home, peer: Peer, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.peer = peer
        self.timeout = timeout
        self._raw = open_channel(home, peer.card.address)
        channel = authenticated_channel(self._raw, home.keys, peer.node_id)
        self.catalog = rpc.CatalogStub(channel)
        self.negotiation = rpc.NegotiationStub(channel)
        self.transfer = rpc.TransferStub(channel)
        self.receipts = rpc.ReceiptsStub(channel)
        self.notifications = rpc.NotificationsStub(channel)
        self.audit = rpc.AuditStub(channel)

    def call(self, method: Callable[..., T], request: Any, timeout: float | None = None) -> T:
        try:
            return method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            raise error_from_rpc(e, self.peer.name) from None

    def stream(self, method: Callable[..., Iterator[T]], request: Any,
               timeout: float | None = None) -> Iterator[T]:
        try:
            yield from method(request, timeout=timeout)
        except grpc.RpcError as e:
            raise error_from_rpc(e, self.peer.name) from None

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> PeerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
