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
from node.errors import BadInput
from node.home import Home
from node.peers import Peer

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 15.0


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.enable_retries", 0)]


def open_channel(home: Home, address: str, *, own_node: bool = False) -> grpc.Channel:
    """A channel to a peer (over TLS when ``tls_peer_ca`` is set), or to this node itself."""
    options = channel_options(home.config.max_message_bytes)
    config = home.config
    ca_file = config.tls_peer_ca
    if own_node:  # the node's own port speaks TLS exactly when it has a certificate
        if not config.tls_cert:
            return grpc.insecure_channel(address, options=options)
        ca_file = config.tls_peer_ca or config.tls_client_ca or config.tls_cert
    if not ca_file:
        return grpc.insecure_channel(address, options=options)
    try:
        ca = Path(ca_file).read_bytes()
        key = Path(config.tls_key).read_bytes() if config.tls_key else None
        cert = Path(config.tls_cert).read_bytes() if config.tls_cert else None
    except OSError as e:
        raise BadInput(f"cannot read the node's TLS files: {e.strerror}: {e.filename}") from None
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
