"""Offers: a dataset plus the policy terms its provider is willing to grant."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from node.canonical import canonical_json
from node.datasets import get_dataset
from node.errors import AlreadyExists, NotFound
from node.home import Home
from node.ids import check_id
from policies.terms import Terms, check_offer, load_terms


@dataclass(frozen=True)
class Offer:
    offer_id: str
    dataset_id: str
    terms: Terms
    added_at: int

    def terms_bytes(self) -> bytes:
        return canonical_json(self.terms.to_dict())


def add_offer(home: Home, offer_id: str, dataset_id: str, policy_path: Path) -> Offer:
    check_id(offer_id, what="offer id")
    terms = load_terms(policy_path)
    dataset = get_dataset(home, dataset_id)
    check_offer(terms, dataset.fields, dataset.classification)
    if home.conn.execute("SELECT 1 FROM offers WHERE offer_id = ?", (offer_id,)).fetchone():
        raise AlreadyExists(f"offer {offer_id} already exists")
    terms_json = canonical_json(terms.to_dict())
    with home.change() as change:
        entry = change.audit.append("offer.added", {
            "offer": offer_id, "dataset": dataset_id, "terms": terms.to_dict(),
            "terms_hash": hashlib.sha256(terms_json).hexdigest()})
        change.conn.execute("INSERT INTO offers VALUES (?, ?, ?, ?)",
                            (offer_id, dataset_id, terms_json.decode(), entry.time))
    return get_offer(home, offer_id)


def get_offer(home: Home, offer_id: str) -> Offer:
    row = home.conn.execute("SELECT offer_id, dataset_id, terms, added_at FROM offers "
                            "WHERE offer_id = ?", (offer_id,)).fetchone()
    if row is None:
        raise NotFound(f"no offer {offer_id!r} on this node")
    return _offer(row)


def list_offers(home: Home) -> list[Offer]:
    rows = home.conn.execute("SELECT offer_id, dataset_id, terms, added_at FROM offers "
                             "ORDER BY offer_id").fetchall()
    return [_offer(r) for r in rows]


def offers_for_domain(home: Home, domain: str) -> list[Offer]:
    """What a peer of ``domain`` may see and negotiate."""
    return [o for o in list_offers(home) if domain in o.terms.consumer_domains]


def _offer(row: tuple[str, str, str, int]) -> Offer:
    return Offer(row[0], row[1], _terms(row[2]), row[3])


@lru_cache(maxsize=256)
def _terms(text: str) -> Terms:
    """Stored terms parsed once per text: every negotiation and catalog call reads them."""
    return Terms.from_dict(json.loads(text))
