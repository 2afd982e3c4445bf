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


def envelope_frame(header: bytes, signature: bytes, body: bytes) -> bytes:
    """``DeliveryFrame(envelope=Envelope(header, signature, body))`` in wire format.

    Written by hand so a body of a megabyte or more is copied once, into the frame: built
    as a message and then serialized it was copied twice, and with many deliveries at once
    those copies, waiting to be sent, were most of the provider's memory. The test suite
    holds it equal to the message's own serialization.
    """
    fields = [_field(number, data) for number, data in ((_ENVELOPE_HEADER, header),
              (_ENVELOPE_SIGNATURE, signature), (_ENVELOPE_BODY, body)) if data]
    inner = sum(len(tag) + len(data) for tag, data in fields)
    return b"".join([_key(_FRAME_ENVELOPE), _varint(inner),
                     *(part for tag, data in fields for part in (tag, data))])


def _field(number: int, data: bytes) -> tuple[bytes, bytes]:
    """The key and length of a length-delimited field, and its data."""
    return _key(number) + _varint(len(data)), data


def _key(number: int) -> bytes:
    return _varint(number << 3 | 2)  # wire type 2: length-delimited


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_FRAME_ENVELOPE = pb.DeliveryFrame.DESCRIPTOR.fields_by_name["envelope"].number
_ENVELOPE_HEADER, _ENVELOPE_SIGNATURE, _ENVELOPE_BODY = (
    pb.Envelope.DESCRIPTOR.fields_by_name[name].number for name in ("header", "signature", "body"))


STATE_TO_PB = {"pending": pb.REQUEST_STATE_PENDING, "agreed": pb.REQUEST_STATE_AGREED,
               "rejected": pb.REQUEST_STATE_REJECTED}
STATE_FROM_PB = {v: k for k, v in STATE_TO_PB.items()}
