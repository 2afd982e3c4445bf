"""Contract negotiation through the real gRPC path and the command line.

One provider publishes three offers of its data: ``companies-credit`` (auto approval),
``companies-manual`` (manual approval) and ``patients-review`` (sensitive data, manual).
Four nodes ask: ``cons`` (finance.qingdao, the offers' domain), ``other`` (retail.qingdao,
trusted but of a domain no offer allows) and ``stranger`` (finance.qingdao, which the
provider never trusted).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node.agreements import verify_agreement
from tests.conftest import Node
from tests.integration.conftest import (
    APP,
    OFFER_ID,
    PURPOSE,
    agreement_doc,
    as_json,
    audit,
    card_of,
    error_line,
    last_line,
    make_node,
    negotiate,
    publish,
    sql,
    table_snapshot,
    trust,
)

MANUAL_OFFER = "companies-manual"
SENSITIVE_OFFER = "patients-review"


@dataclass(frozen=True)
class Space:
    provider: Node
    consumer: Node
    other: Node
    stranger: Node

    def node(self, role: str) -> Node:
        return {"consumer": self.consumer, "other": self.other,
                "stranger": self.stranger}[role]


@pytest.fixture(scope="module")
def space(module_dir: Path) -> Iterator[Space]:
    provider = make_node(module_dir, "prov", "data.qingdao")
    consumer = make_node(module_dir, "cons", "finance.qingdao")
    other = make_node(module_dir, "other", "retail.qingdao")
    stranger = make_node(module_dir, "stranger", "finance.qingdao")
    trust(provider, consumer, other)
    for node in (consumer, other, stranger):
        trust(node, provider)
    publish(provider, module_dir)
    publish(provider, module_dir, offer=MANUAL_OFFER, approval="manual")
    publish(provider, module_dir, dataset="patients", offer=SENSITIVE_OFFER,
            classification="sensitive", approval="manual")
    provider.start()
    try:
        yield Space(provider, consumer, other, stranger)
    finally:
        provider.stop()


def newest_request(node: Node) -> tuple[str, str, list[dict[str, str]]]:
    """(request id, state, reasons) of the node's newest request."""
    rows = sql(node, "SELECT request_id, state, reasons FROM requests "
                     "ORDER BY created_at DESC, rowid DESC LIMIT 1")
    assert rows, "no request was recorded"
    request_id, state, reasons = rows[0]
    return request_id, state, json.loads(reasons)


def decisions(node: Node, request_id: str) -> list[dict[str, Any]]:
    return [e for e in audit(node, "negotiation.decided") if e["request"] == request_id]


# ---- refusals ------------------------------------------------------------------------------
# id: (who asks, extra arguments, purpose, the term the provider names, text of the reason)
REFUSALS: dict[str, tuple[str, list[str], str, str, str]] = {
    "a field not offered": (
        "consumer", ["--fields", "company_id,city"], PURPOSE, "fields", "field 'city'"),
    "max_deliveries above the offer": (
        "consumer", ["--max-deliveries", "25", "--period", "1d"], PURPOSE, "max_deliveries",
        "max_deliveries 25 exceeds"),
    "a period shorter than the offer's": (
        "consumer", ["--max-deliveries", "1", "--period", "1h"], PURPOSE, "period",
        "period 1h is shorter"),
    "a longer retention": (
        "consumer", ["--retention", "8d"], PURPOSE, "retention", "retention 8d exceeds"),
    "more reads": ("consumer", ["--max-reads", "11"], PURPOSE, "max_reads",
                   "max_reads 11 exceeds"),
    "a longer lifetime": ("consumer", ["--valid-for", "91d"], PURPOSE, "valid_for",
                          "valid_for 91d exceeds"),
    "a purpose not offered": ("consumer", [], "marketing", "purpose", "purpose 'marketing'"),
    "a domain the offer does not allow": (
        "other", [], PURPOSE, "consumer_domain", "domain retail.qingdao"),
    "a peer the provider does not trust": (
        "stranger", [], PURPOSE, "", "not a trusted peer"),
}


@pytest.mark.parametrize("who, extra, purpose, term, reason", REFUSALS.values(),
                         ids=REFUSALS.keys())
def test_a_request_beyond_the_offer_is_refused_naming_the_term(
        space: Space, who: str, extra: list[str], purpose: str, term: str,
        reason: str) -> None:
    asker, provider = space.node(who), space.provider
    watched = ("agreements", "deliveries")
    before = [table_snapshot(n, *watched) for n in (asker, provider)]
    logged = len(audit(provider))

    result = asker.cli("negotiate", "prov", OFFER_ID, "--purpose", purpose, "--app", APP,
                       *extra)

    assert result.returncode == 3, result.stderr
    assert reason in error_line(result)
    assert result.stdout == ""
    # nothing was agreed on either side
    assert [table_snapshot(n, *watched) for n in (asker, provider)] == before
    # the asker keeps its request as rejected, with the reason, in its table and its log
    request_id, state, reasons = newest_request(asker)
    assert state == "rejected"
    assert any(reason in r["message"] for r in reasons)
    asker_decisions = decisions(asker, request_id)
    assert [d["outcome"] for d in asker_decisions] == ["rejected"]
    if who == "stranger":  # the provider refused the call itself, before any negotiation
        refused = audit(provider, "call.refused")
        assert refused[-1]["reason"] == "unknown_peer"
        assert not decisions(provider, request_id)
        assert [r["term"] for r in asker_decisions[0]["reasons"]] == ["unknown_peer"]
        return
    # the provider logged the request and its decision, the reason naming the term
    assert [e["request"] for e in audit(provider, "negotiation.requested")].count(
        request_id) == 1
    provider_decisions = decisions(provider, request_id)
    assert [d["outcome"] for d in provider_decisions] == ["rejected"]
    assert term in [r["term"] for r in provider_decisions[0]["reasons"]]
    # the asker has the provider's signed reasons; a refused call gives its error code
    asker_term = "domain_refused" if who == "other" else term
    assert asker_term in [r["term"] for r in asker_decisions[0]["reasons"]]
    # a refusal is in the provider's log once: as the decision, not again as a refused call
    # (and the checkpoint exchange that follows a negotiation either way)
    assert [e["kind"] for e in audit(provider)[logged:] if e["kind"] != "checkpoint.cosigned"
            ] == ["negotiation.requested", "negotiation.decided"]


def test_every_term_beyond_the_offer_is_named_at_once(space: Space) -> None:
    result = space.consumer.cli("negotiate", "prov", OFFER_ID, "--purpose", "marketing",
                                "--app", APP, "--max-reads", "11", "--retention", "8d")
    assert result.returncode == 3
    line = error_line(result)
    for text in ("purpose 'marketing'", "retention 8d exceeds", "max_reads 11 exceeds"):
        assert text in line


# ---- the catalog -----------------------------------------------------------------------------
CATALOGS: dict[str, tuple[str, int, list[str]]] = {
    "the offers' domain sees them all": (
        "consumer", 0, [OFFER_ID, MANUAL_OFFER, SENSITIVE_OFFER]),
    "another domain sees none": ("other", 0, []),
    "an untrusted peer is refused": ("stranger", 3, []),
}


@pytest.mark.parametrize("who, code, offers", CATALOGS.values(), ids=CATALOGS.keys())
def test_the_catalog_shows_only_the_offers_open_to_the_callers_domain(
        space: Space, who: str, code: int, offers: list[str]) -> None:
    result = space.node(who).cli("catalog", "prov", "--json")
    assert result.returncode == code, result.stderr
    if code:
        assert "not a trusted peer" in error_line(result)
        return
    assert sorted(o["offer_id"] for o in json.loads(result.stdout)["offers"]) == sorted(offers)


# ---- agreements: signed by both, verified by both -------------------------------------------
def test_an_agreement_is_signed_by_both_nodes_and_verifies_on_both(space: Space) -> None:
    provider, consumer = space.provider, space.consumer
    agreement_id = negotiate(consumer, "--fields", "phone,company_id", "--max-reads", "3")

    provider_doc, consumer_doc = agreement_doc(provider, agreement_id), agreement_doc(
        consumer, agreement_id)
    assert provider_doc == consumer_doc  # one document, both signatures, on both sides
    cards = card_of(provider), card_of(consumer)
    for doc in (provider_doc, consumer_doc):
        agreement = verify_agreement(doc, *cards, countersigned=True)
        assert agreement.agreement_id == agreement_id
        assert agreement.terms.fields == (("company_id", "plain"), ("phone", "hash"))
        assert agreement.terms.max_reads == 3
    states = {n: sql(n, "SELECT state FROM agreements WHERE agreement_id = ?", agreement_id)
              for n in (provider, consumer)}
    assert states == {provider: [("active",)], consumer: [("active",)]}

    # the request, the decision and the agreement (with its hash) are in both logs
    request_id = one_request_of(consumer, agreement_id)
    for node in (provider, consumer):
        assert request_id in [e["request"] for e in audit(node, "negotiation.requested")]
        assert [(d["outcome"], d["agreement"]) for d in decisions(node, request_id)] == [
            ("agreed", agreement_id)]
        signed = [e for e in audit(node, "agreement.signed") if e["agreement"] == agreement_id]
        assert [e["hash"] for e in signed] == [provider_doc.hash]
    proposed = [e for e in audit(provider, "agreement.proposed")
                if e["agreement"] == agreement_id]
    assert [e["hash"] for e in proposed] == [provider_doc.hash]


def one_request_of(node: Node, agreement_id: str) -> str:
    rows = sql(node, "SELECT request_id FROM requests WHERE agreement_id = ?", agreement_id)
    assert len(rows) == 1
    return str(rows[0][0])


# ---- manual approval -------------------------------------------------------------------------
def ask_pending(space: Space, offer: str) -> str:
    """Negotiate with a short wait: the request is pending; returns its id."""
    result = space.consumer.cli("negotiate", "prov", offer, "--purpose", PURPOSE, "--app", APP,
                                "--wait", "0.5", "--json")
    answer = as_json(result)
    assert answer["state"] == "pending"
    waiting = as_json(space.provider.cli("requests", "--json"))["requests"]
    assert answer["request_id"] in [r["request_id"] for r in waiting]
    listed = as_json(space.consumer.cli("agreements", "--json"))["agreements"]
    assert {"request_id": answer["request_id"], "state": "pending"}.items() <= next(
        r for r in listed if r.get("request_id") == answer["request_id"]).items()
    return str(answer["request_id"])


def consumer_row(space: Space, key: str, value: str) -> dict[str, Any]:
    listed = as_json(space.consumer.cli("agreements", "--json"))["agreements"]
    found = [r for r in listed if r.get(key) == value]
    assert len(found) == 1, listed
    return dict(found[0])


@pytest.mark.parametrize("offer", [MANUAL_OFFER, SENSITIVE_OFFER],
                         ids=["manual approval", "sensitive data"])
def test_an_approved_request_becomes_an_active_agreement_on_both_sides(
        space: Space, offer: str) -> None:
    provider, consumer = space.provider, space.consumer
    request_id = ask_pending(space, offer)

    approved = provider.cli("approve", request_id)
    assert approved.returncode == 0, approved.stderr
    agreement_id = last_line(approved)

    assert consumer_row(space, "agreement_id", agreement_id)["state"] == "active"
    provider_rows = as_json(provider.cli("agreements", "--json"))["agreements"]
    assert [r["state"] for r in provider_rows if r["agreement_id"] == agreement_id] == [
        "active"]
    assert request_id not in [r["request_id"] for r in as_json(
        provider.cli("requests", "--json"))["requests"]]
    verify_agreement(agreement_doc(consumer, agreement_id), card_of(provider),
                     card_of(consumer), countersigned=True)
    decided = decisions(provider, request_id)
    assert [(d["outcome"], d.get("approved")) for d in decided] == [
        ("pending", None), ("agreed", True)]
    assert [d["outcome"] for d in decisions(consumer, request_id)] == ["agreed"]

    fetched = consumer.cli("fetch", agreement_id)
    assert fetched.returncode == 0, fetched.stderr


def test_a_rejected_request_tells_the_consumer_why(space: Space) -> None:
    provider, consumer = space.provider, space.consumer
    result = consumer.cli("negotiate", "prov", MANUAL_OFFER, "--purpose", PURPOSE, "--app", APP,
                          "--wait", "0.5")
    assert result.returncode == 0, result.stderr
    assert "waits for prov's approval" in result.stdout
    request_id, state, _ = newest_request(consumer)
    assert state == "pending"

    rejected = provider.cli("reject", request_id, "--reason", "not this quarter")
    assert rejected.returncode == 0, rejected.stderr

    row = consumer_row(space, "request_id", request_id)
    assert row["state"] == "rejected"
    assert "not this quarter" in row["reason"]
    assert [(d["outcome"], [r["message"] for r in d["reasons"]])
            for d in decisions(consumer, request_id)] == [("rejected", ["not this quarter"])]
    assert [d["outcome"] for d in decisions(provider, request_id)] == ["pending", "rejected"]
    assert not sql(consumer, "SELECT 1 FROM agreements a JOIN requests r USING (agreement_id) "
                             "WHERE r.request_id = ?", request_id)
    again = provider.cli("approve", request_id)
    assert again.returncode == 3
    assert "already rejected" in error_line(again)


OPERATOR_MISTAKES: dict[str, tuple[list[str], int, str]] = {
    "approve an unknown request": (["approve", "req-unknown"], 2, "no request 'req-unknown'"),
    "reject an unknown request": (["reject", "req-unknown", "--reason", "no"], 2,
                                  "no request 'req-unknown'"),
    "reject without a reason": (["reject", "req-unknown", "--reason", "  "], 3,
                                "needs a reason"),
}


@pytest.mark.parametrize("args, code, message", OPERATOR_MISTAKES.values(),
                         ids=OPERATOR_MISTAKES.keys())
def test_operator_mistakes_are_refused_and_change_nothing(
        space: Space, args: list[str], code: int, message: str) -> None:
    before = table_snapshot(space.provider, "requests", "agreements")
    result = space.provider.cli(*args)
    assert result.returncode == code
    assert message in error_line(result)
    assert table_snapshot(space.provider, "requests", "agreements") == before
