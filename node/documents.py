"""Signed documents: canonical JSON plus the signatures of the nodes that vouch for it.

Agreements, requests, decisions, delivery records, receipts and revocations are all
``SignedDoc``s. The payload bytes are kept exactly as signed (canonical JSON), so what is
stored, sent and exported is what was signed, and the document's hash is stable.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from node.canonical import b64, canonical_json, parse_canonical, signing_bytes, unb64
from node.errors import BadSignature, MalformedMessage
from node.identity import NodeKeys, verify_signature

DOC_TYPES = ("request", "decision", "agreement", "delivery-start", "delivery-end",
             "destruction-receipt", "receipt-ack", "revocation")


@dataclass(frozen=True)
class SignedDoc:
    type: str
    payload: bytes
    signatures: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in DOC_TYPES:
            shown = repr(self.type) if len(self.type) <= 40 else repr(self.type[:40]) + "..."
            raise MalformedMessage(f"unknown document type {shown}; expected one of "
                                   f"{', '.join(DOC_TYPES)}")

    @classmethod
    def create(cls, doc_type: str, body: dict[str, Any], keys: NodeKeys) -> SignedDoc:
        return cls(doc_type, canonical_json(body)).signed_by(keys)

    def body(self) -> dict[str, Any]:
        return parse_canonical(self.payload, what=f"{self.type} document")

    @property
    def hash(self) -> str:
        """SHA-256 of the signing bytes, hex: names this document in audit entries."""
        return hashlib.sha256(signing_bytes(self.type, self.payload)).hexdigest()

    def signed_by(self, keys: NodeKeys) -> SignedDoc:
        signatures = dict(self.signatures)
        signatures[keys.node_id] = keys.sign(self.type, self.payload)
        return SignedDoc(self.type, self.payload, signatures)

    def verify(self, node_id: str, verify_key: bytes, *, what: str) -> None:
        """The document carries a valid signature of ``node_id`` (else BadSignature)."""
        signature = self.signatures.get(node_id)
        if signature is None:
            raise BadSignature(f"{what} is not signed by {node_id}")
        verify_signature(verify_key, self.type, self.payload, signature, what=what)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "payload": self.payload.decode("utf-8"),
                "signatures": {k: b64(v) for k, v in sorted(self.signatures.items())}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, raw: Any) -> SignedDoc:
        if not isinstance(raw, dict) or set(raw) != {"type", "payload", "signatures"} \
                or not isinstance(raw["payload"], str) or not isinstance(raw["signatures"], dict):
            raise MalformedMessage("a signed document must have type, payload and signatures")
        signatures = {str(k): unb64(v, what="a document signature", size=64)
                      for k, v in raw["signatures"].items() if isinstance(v, str)}
        if len(signatures) != len(raw["signatures"]):
            raise MalformedMessage("a document signature is not base64 text")
        try:
            payload = raw["payload"].encode("utf-8")
        except UnicodeEncodeError:  # JSON may spell a lone surrogate, which has no UTF-8
            raise MalformedMessage("a signed document's payload is not valid Unicode") from None
        return cls(str(raw["type"]), payload, signatures)

    @classmethod
    def from_json(cls, text: str) -> SignedDoc:
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, RecursionError):  # a deeply nested value: no document is so deep
            raise MalformedMessage("the signed document is not JSON") from None
