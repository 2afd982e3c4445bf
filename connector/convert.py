"""The one place that converts between wire messages and the node's own types."""

from __future__ import annotations

from connector.pb import trustspace_pb2 as pb
from node.documents import SignedDoc
from node.errors import MalformedMessage

MAX_SIGNATURES = 2
"""A document carries the signatures of its parties: two at most (an agreement)."""


def doc_to_pb(doc: SignedDoc) -> pb.SignedDocument:
    return pb.SignedDocument(type=doc.type, payload=doc.payload, signatures=[
        pb.Signature(node_id=k, signature=v) for k, v in sorted(doc.signatures.items())])


def doc_from_pb(message: pb.SignedDocument, *, what: str) -> SignedDoc:
    if not message.type or not message.payload:
        raise MalformedMessage(f"the {what} is missing")
    if len(message.signatures) > MAX_SIGNATURES:
        raise MalformedMessage(f"the {what} carries {len(message.signatures)} signatures; a "
                               f"document carries at most {MAX_SIGNATURES}, its parties'")
    signatures: dict[str, bytes] = {}
    for signature in message.signatures:
        if signature.node_id in signatures or len(signature.signature) != 64:
            raise MalformedMessage(f"the {what} carries a malformed or repeated signature")
        signatures[signature.node_id] = bytes(signature.signature)
    return SignedDoc(message.type, bytes(message.payload), signatures)


STATE_TO_PB = {"pending": pb.REQUEST_STATE_PENDING, "agreed": pb.REQUEST_STATE_AGREED,
               "rejected": pb.REQUEST_STATE_REJECTED}
STATE_FROM_PB = {v: k for k, v in STATE_TO_PB.items()}
