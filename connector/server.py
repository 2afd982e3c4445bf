"""The node's gRPC server: one factory, every service, auth in front of all of them."""

from __future__ import annotations

from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from connector.auth import ServerAuth
from connector.client import channel_options
from connector.pb import trustspace_pb2 as pb
from connector.pb import trustspace_pb2_grpc as rpc
from connector.serial_calls import SerialCalls
from node.errors import BadInput
from node.home import Home

SERVICES = ("Catalog", "Negotiation", "Transfer", "Receipts", "Notifications", "Audit")
WORKERS = 32


def create_server(home: Home, address: str | None = None) -> tuple[grpc.Server, int]:
    """Build (not start) the node's server on ``address`` (default: the configured one)."""
    from connector.audit_exchange import AuditService
    from connector.consumer import NotificationsService
    from connector.provider import (
        CatalogService,
        NegotiationService,
        ReceiptsService,
        TransferService,
    )

    # gRPC sets SO_REUSEPORT by default: a second node on a busy port would then share it
    # with the first and receive half of its peers' calls. One port, one node.
    options = [*channel_options(home.config.max_message_bytes), ("grpc.so_reuseport", 0)]
    # SerialCalls outermost: a call is authenticated in the call slot too
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS),
                         interceptors=[SerialCalls(home), ServerAuth(home)], options=options)
    rpc.add_CatalogServicer_to_server(CatalogService(home), server)
    rpc.add_NegotiationServicer_to_server(NegotiationService(home), server)
    rpc.add_TransferServicer_to_server(TransferService(home), server)
    rpc.add_ReceiptsServicer_to_server(ReceiptsService(home), server)
    rpc.add_NotificationsServicer_to_server(NotificationsService(home), server)
    rpc.add_AuditServicer_to_server(AuditService(home), server)

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [pb.DESCRIPTOR.services_by_name[s].full_name for s in SERVICES]
    for name in ["", *names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME],
                                        server)

    port = _bind(server, home, address or home.config.listen)
    return server, port


def _bind(server: grpc.Server, home: Home, address: str) -> int:
    config = home.config
    try:
        if config.tls_cert and config.tls_key:
            client_ca = Path(config.tls_client_ca).read_bytes() if config.tls_client_ca else None
            credentials = grpc.ssl_server_credentials(
                [(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())],
                root_certificates=client_ca, require_client_auth=client_ca is not None)
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except OSError as e:
        raise BadInput(f"cannot read the node's TLS files: {e.strerror}: {e.filename}") from None
    except RuntimeError:
        port = 0
    if port == 0:
        raise BadInput(f"cannot listen on {address}: the address is in use or not local")
    return port
