"""The consumer's side of talking to providers: catalog, negotiate, fetch; and the
notification service providers call on a consumer (revocations)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from connector.auth import current_caller
from connector.client import PeerClient
from connector.convert import STATE_FROM_PB, doc_from_pb, doc_to_pb
from connector.outbox_sender import flush_outbox
from connector.pb import trustspace_pb2 as pb
from connector.pb import trustspace_pb2_grpc as rpc
from node import negotiation
from node.agreements import StoredAgreement, load_agreement
from node.errors import (
    BadInput,
    ContractRefused,
    EnvelopeTampered,
    MalformedMessage,
    NotFound,
    TrustspaceError,
)
from node.faults import crash_point
from node.home import Home
from node.peers import Peer, peer_by_id, peer_by_name
from node.receive import Receiver, resume_point
from node.revocation import accept_revocation
from policies.evaluate import Request

POLL_S = 0.5
# A request is sent within this long of its creation, or never: the Negotiate call's
# deadline counts from the request's created_at. Until then a provider that does not know
# the request may still be about to receive it, so "not found" does not end it yet.
SENDING_S = 15.0


def _exchange(home: Home, client: PeerClient) -> None:
    """Swap audit checkpoints with the counterparty; never fails the operation itself."""
    from connector.audit_exchange import exchange_checkpoints

    try:
        exchange_checkpoints(home, client)
    except TrustspaceError:
        pass


# ---- catalog -------------------------------------------------------------------------------
def catalog(home: Home, peer_name: str) -> list[dict[str, Any]]:
    peer = peer_by_name(home, peer_name)
    with PeerClient(home, peer) as client:
        response = client.call(client.catalog.ListOffers, pb.ListOffersRequest())
    return [{"offer_id": o.offer_id, "dataset_id": o.dataset_id,
             "classification": o.classification, "rows": o.row_count,
             "fields": list(o.fields), "terms": json.loads(o.terms)} for o in response.offers]


# ---- negotiation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class NegotiationResult:
    request_id: str
    state: str
    agreement: StoredAgreement | None
    reason: str


def negotiate(home: Home, peer_name: str, offer_id: str, request: Request,
              wait_s: float = 10.0, client: PeerClient | None = None) -> NegotiationResult:
    """Request an agreement for ``offer_id`` and, once agreed, countersign it.

    ``client``, an open client to the provider, is used and left open: a caller that
    negotiates many times keeps one connection instead of opening one per negotiation.
    """
    provider = peer_by_name(home, peer_name)
    if client is not None and client.peer.node_id != provider.node_id:
        raise BadInput(f"the client given is connected to {client.peer.name}, not to "
                       f"{provider.name}")
    doc = negotiation.make_request(home, provider, offer_id, request)
    request_id, created_at = doc.body()["request_id"], doc.body()["created_at"]
    crash_point("negotiate.requested")
    with _connected(home, provider, client) as client:
        try:
            response = client.call(client.negotiation.Negotiate,
                                   pb.NegotiateRequest(request=doc_to_pb(doc)),
                                   timeout=max(0.001, _sent_by(created_at) - time.time()))
        except TrustspaceError as e:
            if e.kind != "unavailable":  # the provider answered no: the request is over
                negotiation.record_rejection(home, request_id, (
                    {"term": e.code, "message": e.message[:300]},))
            raise
        crash_point("negotiate.answered")
        result = _settle(home, client, request_id, response)
        deadline = time.monotonic() + wait_s
        while result.state == "pending" and time.monotonic() < deadline:
            time.sleep(POLL_S)
            response = client.call(client.negotiation.RequestStatus,
                                   pb.RequestStatusRequest(request_id=request_id))
            result = _settle(home, client, request_id, response)
        if result.state != "agreed":  # an agreement swapped checkpoints on its countersignature
            _exchange(home, client)
    return result


@contextmanager
def _connected(home: Home, peer: Peer, lent: PeerClient | None) -> Iterator[PeerClient]:
    """The lent client (left open), or a new one closed on the way out."""
    if lent is not None:
        yield lent
        return
    with PeerClient(home, peer) as client:
        yield client


def check_request(home: Home, request_id: str) -> NegotiationResult:
    """Ask the provider about a request still pending here."""
    row = home.conn.execute("SELECT peer_id FROM requests WHERE request_id = ? AND role = "
                            "'consumer'", (request_id,)).fetchone()
    provider = peer_by_id(home, row[0])
    with PeerClient(home, provider, timeout=5) as client:
        response = client.call(client.negotiation.RequestStatus,
                               pb.RequestStatusRequest(request_id=request_id))
        return _settle(home, client, request_id, response)


def _sent_by(created_at: int) -> float:
    """When (epoch seconds) a request created at ``created_at`` (ms) is sent, or never is."""
    return created_at / 1000 + SENDING_S


def poll_pending_requests(home: Home) -> int:
    """The running node learns the outcome of requests still pending here: those waiting
    for approval, and those whose command died or lost the provider before the answer."""
    settled = 0
    for pending in negotiation.pending_requests(home, "consumer"):
        try:
            if check_request(home, pending["request_id"]).state != "pending":
                settled += 1
        except NotFound as e:
            if time.time() < _sent_by(pending["created_at"]):
                continue  # a command may still be sending it: the provider may yet decide
            # the sending window closed and the provider never kept it: refused on arrival,
            # or never sent (the command died first)
            negotiation.record_rejection(home, pending["request_id"], (
                {"term": e.code, "message": e.message[:300]},))
            settled += 1
        except TrustspaceError:
            continue
    return settled


def _settle(home: Home, client: PeerClient, request_id: str,
            response: pb.NegotiateResponse) -> NegotiationResult:
    state = STATE_FROM_PB.get(response.state)
    if state is None or response.request_id != request_id:
        raise MalformedMessage(f"{client.peer.name} answered with an unknown negotiation state")
    decision = doc_from_pb(response.decision, what="decision") \
        if response.HasField("decision") else None
    if state == "rejected":
        if decision is not None:
            negotiation.record_decided_rejection(home, client.peer, request_id, decision)
        else:
            negotiation.record_rejection(home, request_id, tuple(
                {"term": "provider", "message": m} for m in response.reason.split("; ")))
        return NegotiationResult(request_id, state, None, response.reason)
    if state == "pending":
        return NegotiationResult(request_id, state, None, "")
    stored = negotiation.accept_agreement(
        home, client.peer, request_id, doc_from_pb(response.agreement, what="agreement"),
        decision)
    crash_point("negotiate.countersigned")
    flush_outbox(home, client.peer.node_id, force=True, client=client)
    return NegotiationResult(request_id, state, stored, "")


# ---- fetch ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class FetchResult:
    agreement_id: str
    delivery_id: str
    rows: int
    envelopes: int
    resumed: bool


def fetch(home: Home, agreement_id: str,
          progress: Callable[[int, int], None] | None = None) -> FetchResult:
    """One delivery into the vault; resumes an unfinished one instead of starting anew."""
    stored = load_agreement(home, agreement_id, role="consumer")
    if stored.state == "revoked":
        raise ContractRefused(f"agreement {agreement_id} was revoked")
    provider = peer_by_id(home, stored.peer_id)
    flush_outbox(home, provider.node_id, force=True)  # the countersignature goes first
    resume = resume_point(home, agreement_id)
    receiver = Receiver(home, stored, provider)
    request = pb.FetchRequest(agreement_id=agreement_id,
                              resume_delivery_id=resume.delivery_id if resume else "",
                              from_sequence=resume.from_seq if resume else 0)
    with PeerClient(home, provider) as client:
        try:
            for frame in client.stream(client.transfer.Fetch, request):
                kind = frame.WhichOneof("frame")
                try:
                    if kind == "start":
                        receiver.on_start(doc_from_pb(frame.start, what="delivery start"),
                                          resume)
                        crash_point("fetch.started")
                        if progress:
                            progress(receiver.rows, receiver.expected_rows)
                    elif kind == "envelope":
                        e = frame.envelope
                        receiver.on_envelope(e.header, e.signature, e.body)
                        crash_point("fetch.envelope_stored")
                        if progress:
                            progress(receiver.rows, receiver.expected_rows)
                    elif kind == "end":
                        receiver.on_end(doc_from_pb(frame.end, what="delivery end"))
                        crash_point("fetch.completed")
                    else:
                        raise MalformedMessage("the provider sent an empty frame")
                except (EnvelopeTampered, MalformedMessage) as e:
                    receiver.abort(e)
                    raise
                except TrustspaceError as e:
                    if e.kind == "unauthenticated":  # a bad signature on a frame
                        receiver.abort(e)
                    raise
        except ContractRefused:
            _learn_revocation(home, client, agreement_id)
            raise
        if not receiver.completed:
            raise ContractRefused(f"{provider.name} ended the delivery before its end")
        _exchange(home, client)
    return FetchResult(agreement_id, receiver.delivery_id, receiver.rows, receiver.next_seq,
                       resume is not None)


def _learn_revocation(home: Home, client: PeerClient, agreement_id: str) -> None:
    try:
        status = client.call(client.negotiation.AgreementStatus,
                             pb.AgreementStatusRequest(agreement_id=agreement_id))
    except TrustspaceError:
        return
    if status.state == "revoked" and status.HasField("revocation"):
        accept_revocation(home, client.peer, doc_from_pb(status.revocation, what="revocation"))
        flush_outbox(home, client.peer.node_id, force=True)  # the receipt, while in contact


# ---- the service providers call on consumers ----------------------------------------------
class NotificationsService(rpc.NotificationsServicer):
    def __init__(self, home: Home) -> None:
        self.home = home

    def Revoked(self, request: pb.RevocationNotice, context: grpc.ServicerContext) -> pb.Ack:
        doc = doc_from_pb(request.revocation, what="revocation")
        stored = accept_revocation(self.home, current_caller(), doc)
        return pb.Ack(id=stored.agreement_id)
