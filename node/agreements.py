"""Agreements: the concrete terms one consumer obtained for one offer, signed by both.

The agreement is one canonical document. The provider signs it first; the consumer
verifies and countersigns; only then is it ``active`` on either side. Both nodes keep the
document with both signatures, and :func:`verify_agreement` checks it step by step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from node.audit import now_ms
from node.documents import SignedDoc
from node.errors import ContractRefused, MalformedMessage, NotFound
from node.home import Home
from node.identity import NodeCard
from policies.evaluate import AgreedTerms

STATES = ("awaiting_countersignature", "active", "revoked")


@dataclass(frozen=True)
class Agreement:
    agreement_id: str
    request_id: str
    offer_id: str
    dataset_id: str
    provider: str
    consumer: str
    provider_domain: str
    consumer_domain: str
    terms: AgreedTerms
    created_at: int
    expires_at: int

    def to_body(self) -> dict[str, Any]:
        return {"agreement_id": self.agreement_id, "request_id": self.request_id,
                "offer_id": self.offer_id, "dataset_id": self.dataset_id,
                "provider": self.provider, "consumer": self.consumer,
                "provider_domain": self.provider_domain,
                "consumer_domain": self.consumer_domain, "terms": self.terms.to_dict(),
                "created_at": self.created_at, "expires_at": self.expires_at}

    @classmethod
    def from_doc(cls, doc: SignedDoc) -> Agreement:
        if doc.type != "agreement":
            raise MalformedMessage(f"expected an agreement document, found {doc.type}")
        return _parsed(doc.payload)

    @classmethod
    def _from_payload(cls, payload: bytes) -> Agreement:
        body = SignedDoc("agreement", payload).body()
        expected = set(cls.__dataclass_fields__)
        if set(body) != expected:
            raise MalformedMessage("the agreement does not have exactly the agreement fields")
        try:
            terms = AgreedTerms.from_dict(body["terms"])
            values = {k: body[k] for k in expected if k != "terms"}
            for key in ("created_at", "expires_at"):
                if not isinstance(values[key], int) or isinstance(values[key], bool):
                    raise TypeError(key)
            for key in expected - {"terms", "created_at", "expires_at"}:
                if not isinstance(values[key], str):
                    raise TypeError(key)
        except (TypeError, KeyError) as e:
            raise MalformedMessage(f"the agreement field {e} has the wrong type") from None
        agreement = cls(terms=terms, **values)
        if agreement.expires_at != agreement.created_at + terms.valid_for * 1000:
            raise MalformedMessage("the agreement's expiry does not match its lifetime")
        return agreement

    def live_reason(self, now: int | None = None) -> str | None:
        """Why this agreement cannot be used now, or None."""
        now = now_ms() if now is None else now
        if now >= self.expires_at:
            return f"agreement {self.agreement_id} expired"
        return None


@lru_cache(maxsize=1024)
def _parsed(payload: bytes) -> Agreement:
    """Agreements parsed by their payload: one agreement's document is read on every step
    of its life (each call, envelope and read), and an Agreement cannot change."""
    return Agreement._from_payload(payload)


def verify_agreement(doc: SignedDoc, provider: NodeCard, consumer: NodeCard, *,
                     countersigned: bool) -> Agreement:
    """Verify an agreement document, in order, naming the first thing that fails.

    1. it parses as an agreement; 2. its parties are these two nodes, with their domains;
    3. the provider's signature verifies; 4. when ``countersigned``, the consumer's too.
    """
    agreement = Agreement.from_doc(doc)
    if (agreement.provider, agreement.consumer) != (provider.node_id, consumer.node_id):
        raise ContractRefused(f"agreement {agreement.agreement_id} is between other nodes")
    if (agreement.provider_domain, agreement.consumer_domain) != (provider.domain,
                                                                 consumer.domain):
        raise ContractRefused(f"agreement {agreement.agreement_id} names the wrong domains")
    doc.verify(provider.node_id, provider.verify_key,
               what=f"agreement {agreement.agreement_id} (provider)")
    if countersigned:
        doc.verify(consumer.node_id, consumer.verify_key,
                   what=f"agreement {agreement.agreement_id} (consumer)")
    return agreement


@dataclass(frozen=True)
class StoredAgreement:
    agreement: Agreement
    doc: SignedDoc
    role: str
    peer_id: str
    state: str
    revoked_at: int | None
    revocation: SignedDoc | None
    hash_key: bytes | None

    @property
    def agreement_id(self) -> str:
        return self.agreement.agreement_id

    def refusal(self, now: int | None = None) -> str | None:
        """Why no data may flow under this agreement now, or None."""
        if self.state == "revoked":
            return f"agreement {self.agreement_id} was revoked"
        if self.state != "active":
            return f"agreement {self.agreement_id} is not countersigned yet"
        return self.agreement.live_reason(now)


def load_agreement(home: Home, agreement_id: str, *, role: str | None = None) -> StoredAgreement:
    row = home.conn.execute(
        "SELECT document, role, peer_id, state, revoked_at, revocation, hash_key "
        "FROM agreements WHERE agreement_id = ?", (agreement_id,)).fetchone()
    if row is None or (role is not None and row[1] != role):
        raise NotFound(f"no agreement {agreement_id!r} on this node"
                       + (f" as {role}" if role else ""))
    doc = SignedDoc.from_json(row[0])
    revocation = SignedDoc.from_json(row[5]) if row[5] else None
    return StoredAgreement(Agreement.from_doc(doc), doc, row[1], row[2], row[3], row[4],
                           revocation, row[6])


def list_agreements(home: Home) -> list[StoredAgreement]:
    ids = [r[0] for r in home.conn.execute(
        "SELECT agreement_id FROM agreements ORDER BY created_at, agreement_id")]
    return [load_agreement(home, i) for i in ids]


def signatures_json(doc: SignedDoc) -> str:
    return json.dumps(doc.to_dict()["signatures"], sort_keys=True)
