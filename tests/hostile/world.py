"""Two real nodes serving in-process, one agreement between them, and ways to call them raw.

The provider (data.qingdao) and the consumer (finance.qingdao) are made with ``Home.init``
and serve with ``create_server`` on loopback ports their cards name, so the product's own
client code (negotiate, fetch) works between them. A hostile test then builds calls by hand:
any bytes, signed by a trusted peer's key with :func:`connector.auth.sign_call`, sent with
identity serializers so nothing on our side re-encodes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from connector.auth import sign_call
from connector.consumer import fetch, negotiate
from connector.pb import trustspace_pb2 as pb
from connector.server import create_server
from node.audit_format import AuditEntry
from node.config import Config
from node.datasets import add_dataset
from node.home import Home
from node.offers import add_offer
from node.peers import add_peer
from policies.evaluate import Request
from tests import node_db
from tests.conftest import free_port, write_companies, write_policy
from tests.node_db import audit_since, audit_size

OFFER_ID = "companies-credit"
DATASET_ID = "companies"
MAX_MESSAGE_BYTES = 1 << 20  # small, so an oversized message is cheap to send
MAX_STREAMS = 2
TIMEOUT_S = 30.0
Metadata = list[tuple[str, str]]

# The refusals a refused call may leave in the audit log, and nothing else.
REFUSAL_KINDS = frozenset({"call.refused", "delivery.refused", "checkpoint.refused"})
# A request for an offer the caller may not see is refused, and the refusal is logged.
NEGOTIATION_REFUSAL_KINDS = REFUSAL_KINDS | {"negotiation.requested", "negotiation.decided"}
# Tables a refused call may still touch: the log itself, its checkpoints, and the nonce of an
# authenticated call (replay protection must hold for refused calls too).
VOLATILE_TABLES = ("audit_entries", "audit_checkpoints", "seen_nonces")


def state(path: Path, volatile: tuple[str, ...] = VOLATILE_TABLES) -> dict[str, list[str]]:
    """Every row of every table but the log's and the nonces a refused call may add."""
    return node_db.state(path, volatile)


def method_path(service: str, name: str) -> str:
    return f"/trustspace.v1.{service}/{name}"


@dataclass
class Served:
    """One node: its home, its running server, and a raw channel to it."""

    home: Home
    server: grpc.Server
    channel: grpc.Channel

    @property
    def path(self) -> Path:
        return self.home.path

    def close(self) -> None:
        self.channel.close()
        self.server.stop(None).wait()
        self.home.close()


def serve(path: Path, name: str, domain: str) -> Served:
    port = free_port()
    home = Home.init(path, Config(name=name, domain=domain, listen=f"127.0.0.1:{port}",
                                  max_message_bytes=MAX_MESSAGE_BYTES,
                                  max_streams_per_peer=MAX_STREAMS))
    server, bound = create_server(home)
    server.start()
    return Served(home, server, grpc.insecure_channel(f"127.0.0.1:{bound}"))


class World:
    """A provider and a consumer that trust each other, with one agreement and one delivery."""

    def __init__(self, root: Path, rows: int = 20) -> None:
        self.provider = serve(root / "provider", "prov", "data.qingdao")
        self.consumer = serve(root / "consumer", "cons", "finance.qingdao")
        add_peer(self.provider.home, self.consumer.home.signed_card())
        add_peer(self.consumer.home, self.provider.home.signed_card())
        data = write_companies(root / "companies.csv", rows)
        add_dataset(self.provider.home, DATASET_ID, data, "internal")
        add_offer(self.provider.home, OFFER_ID, DATASET_ID, write_policy(root / "policy.toml"))
        self.agreement_id = self.negotiate()
        self.delivery_id = fetch(self.consumer.home, self.agreement_id).delivery_id

    def negotiate(self) -> str:
        """One more agreement for the standard request; returns its id."""
        result = negotiate(self.consumer.home, "prov", OFFER_ID,
                           Request(purpose="credit-scoring", app="scoring"))
        assert result.agreement is not None, result.reason
        return result.agreement.agreement_id

    def close(self) -> None:
        self.consumer.close()
        self.provider.close()

    # ---- calls, built by hand ------------------------------------------------------------
    def signed(self, method: str, request: Message, *, by: str = "consumer") -> Metadata:
        """Headers of a call from ``by`` to the other node, signed over ``request``."""
        caller, callee = (self.consumer, self.provider) if by == "consumer" else \
            (self.provider, self.consumer)
        return sign_call(caller.home.keys, callee.home.node_id, method, request)

    def raw_unary(self, target: Served, method: str, data: bytes,
                  metadata: Metadata) -> bytes:
        call = target.channel.unary_unary(method)  # identity serializers: bytes as given
        return bytes(call(data, metadata=metadata, timeout=TIMEOUT_S))

    def raw_stream(self, target: Served, method: str, data: bytes,
                   metadata: Metadata) -> list[bytes]:
        call = target.channel.unary_stream(method)
        return [bytes(b) for b in call(data, metadata=metadata, timeout=TIMEOUT_S)]

    def call(self, service: str, name: str, request: Message, *, by: str = "consumer",
             signed_over: Message | None = None) -> bytes | list[bytes]:
        """A correctly signed call (or one signed over ``signed_over``) with ``request``."""
        method = method_path(service, name)
        target = self.provider if by == "consumer" else self.consumer
        metadata = self.signed(method, request if signed_over is None else signed_over, by=by)
        data = request.SerializeToString()
        if (service, name) == ("Transfer", "Fetch"):
            return self.raw_stream(target, method, data, metadata)
        return self.raw_unary(target, method, data, metadata)

    # ---- is the node still well? ---------------------------------------------------------
    def assert_serving(self, target: Served | None = None) -> None:
        """A health check and a legitimate signed call both still work."""
        node = target or self.provider
        health = health_pb2_grpc.HealthStub(node.channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_S)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        if node is self.provider:
            answer = pb.ListOffersResponse.FromString(
                self.call("Catalog", "ListOffers", pb.ListOffersRequest()))  # type: ignore[arg-type]
            assert [o.offer_id for o in answer.offers] == [OFFER_ID]
        else:
            status = pb.AgreementStatusResponse.FromString(self.call(  # type: ignore[arg-type]
                "Negotiation", "AgreementStatus",
                pb.AgreementStatusRequest(agreement_id=self.agreement_id)))
            assert status.state == "active"


# ---- looking inside a node's database -------------------------------------------------------
class Watch:
    """What a node holds before a hostile call, to compare with what it holds after."""

    def __init__(self, node: Served) -> None:
        self.node = node
        self.before = state(node.path)
        self.size = audit_size(node.path)

    def new_entries(self) -> list[AuditEntry]:
        return audit_since(self.node.path, self.size)

    def assert_unchanged(self, allowed: frozenset[str] = REFUSAL_KINDS) -> list[AuditEntry]:
        """Nothing changed but audit entries of the ``allowed`` kinds; returns those."""
        assert state(self.node.path) == self.before
        entries = self.new_entries()
        assert {e.kind for e in entries} <= allowed, [e.kind for e in entries]
        return entries


def rpc_error(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    """The gRPC error ``call(...)`` must end with: a status, and one line of details."""
    try:
        call(*args, **kwargs)
    except grpc.RpcError as e:
        assert isinstance(e, grpc.Call)
        details = e.details() or ""
        assert details.strip() and "\n" not in details, details
        assert "Traceback" not in details and "Exception" not in details, details
        return e
    raise AssertionError("the call was answered; a refusal was expected")
