"""The services a provider node answers. Thin: authenticate (done by the interceptor),
convert, call the node's domain functions, convert back."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc

from connector.audit_exchange import Answer
from connector.auth import current_caller
from connector.convert import STATE_TO_PB, doc_from_pb, doc_to_pb, envelope_frame
from connector.pb import trustspace_pb2 as pb
from connector.pb import trustspace_pb2_grpc as rpc
from node import delivery, negotiation
from node.agreements import load_agreement
from node.datasets import get_dataset
from node.destruction import accept_receipt
from node.errors import NotFound, TrustspaceError
from node.faults import crash_point
from node.home import Home
from node.ids import check_id
from node.negotiation import Outcome
from node.offers import offers_for_domain


def _outcome(outcome: Outcome) -> pb.NegotiateResponse:
    return pb.NegotiateResponse(
        request_id=outcome.request_id, state=STATE_TO_PB[outcome.state],
        agreement=doc_to_pb(outcome.agreement) if outcome.agreement else None,
        reason=outcome.reason_text,
        decision=doc_to_pb(outcome.decision) if outcome.decision else None)


class CatalogService(rpc.CatalogServicer):
    def __init__(self, home: Home) -> None:
        self.home = home

    def ListOffers(self, request: pb.ListOffersRequest,
                   context: grpc.ServicerContext) -> pb.ListOffersResponse:
        caller = current_caller()
        offers = []
        for offer in offers_for_domain(self.home, caller.card.domain):
            dataset = get_dataset(self.home, offer.dataset_id)
            offers.append(pb.Offer(offer_id=offer.offer_id, dataset_id=offer.dataset_id,
                                   classification=dataset.classification,
                                   terms=offer.terms_bytes(), row_count=dataset.row_count,
                                   fields=list(offer.terms.field_names)))
        return pb.ListOffersResponse(offers=offers)


class NegotiationService(rpc.NegotiationServicer):
    def __init__(self, home: Home) -> None:
        self.home = home

    def Negotiate(self, request: pb.NegotiateRequest,
                  context: grpc.ServicerContext) -> pb.NegotiateResponse:
        doc = doc_from_pb(request.request, what="request")
        outcome = negotiation.receive_request(self.home, current_caller(), doc)
        crash_point("provider.request_decided")
        return _outcome(outcome)

    def RequestStatus(self, request: pb.RequestStatusRequest,
                      context: grpc.ServicerContext) -> pb.NegotiateResponse:
        check_id(request.request_id, what="request id")
        return _outcome(negotiation.request_status(self.home, current_caller(),
                                                   request.request_id))

    def Countersign(self, request: pb.CountersignRequest,
                    context: grpc.ServicerContext) -> pb.CountersignResponse:
        caller = current_caller()
        doc = doc_from_pb(request.agreement, what="agreement")
        answer, refused = None, ""
        if request.HasField("checkpoints"):  # the negotiation's checkpoint exchange
            try:
                answer = Answer.open(self.home, caller, request.checkpoints)
            except TrustspaceError as e:  # a refused checkpoint never refuses the countersignature
                refused = e.message
        stored = negotiation.accept_countersignature(
            self.home, caller, doc, also=answer.write if answer else None)
        crash_point("provider.countersigned")
        response = pb.CountersignResponse(agreement_id=stored.agreement_id)
        if answer is not None:
            try:
                response.checkpoints.CopyFrom(answer.response())
            except TrustspaceError as e:
                refused = e.message
        response.checkpoints_refused = refused[:300]
        return response

    def AgreementStatus(self, request: pb.AgreementStatusRequest,
                        context: grpc.ServicerContext) -> pb.AgreementStatusResponse:
        check_id(request.agreement_id, what="agreement id")
        caller = current_caller()
        stored = load_agreement(self.home, request.agreement_id, role="provider")
        if stored.peer_id != caller.node_id:
            raise NotFound(f"no agreement {request.agreement_id!r} with {caller.name}")
        state = "expired" if stored.state == "active" and stored.agreement.live_reason() \
            else stored.state
        return pb.AgreementStatusResponse(
            agreement_id=stored.agreement_id, state=state,
            revocation=doc_to_pb(stored.revocation) if stored.revocation else None)


class TransferService(rpc.TransferServicer):
    def __init__(self, home: Home) -> None:
        self.home = home

    def Fetch(self, request: pb.FetchRequest,
              context: grpc.ServicerContext) -> Iterator[pb.DeliveryFrame | bytes]:
        if request.resume_delivery_id:
            check_id(request.resume_delivery_id, what="delivery id")
        plan = delivery.start_delivery(self.home, current_caller(), request.agreement_id,
                                       request.resume_delivery_id, request.from_sequence)
        crash_point("provider.delivery_started")
        yield pb.DeliveryFrame(start=doc_to_pb(plan.start))
        # mapped, not looped over: no name here keeps an envelope while its frame is sent
        yield from map(_frame, delivery.envelopes(self.home, plan))
        end = delivery.finish(self.home, plan)
        crash_point("provider.delivery_finished")
        yield pb.DeliveryFrame(end=doc_to_pb(end))


def _frame(envelope: tuple[bytes, bytes, bytes]) -> bytes:
    crash_point("provider.envelope_recorded")
    return envelope_frame(*envelope)


class ReceiptsService(rpc.ReceiptsServicer):
    def __init__(self, home: Home) -> None:
        self.home = home

    def SubmitReceipt(self, request: pb.ReceiptRequest, context: grpc.ServicerContext) -> pb.Ack:
        receipt = doc_from_pb(request.receipt, what="receipt")
        ack = accept_receipt(self.home, current_caller(), receipt)
        crash_point("provider.receipt_stored")
        return pb.Ack(id=json.loads(ack.payload)["receipt_id"], acknowledgement=doc_to_pb(ack))
