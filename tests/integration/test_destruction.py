"""Destruction and its proof, with both nodes running: retention, revocation, receipts.

The provider offers ``companies`` twice: under the shared terms and with a retention of two
seconds. Tests that stop a node start it again first thing in the next test
(:func:`ensure_running`), so each test says which nodes it needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node.agreements import load_agreement
from node.destruction import OVERDUE_GRACE_MS, overdue
from node.home import Home
from tests.conftest import Node
from tests.integration.conftest import (
    APP,
    as_json,
    audit,
    ensure_running,
    error_line,
    last_line,
    make_node,
    negotiate,
    one,
    publish,
    sql,
    trust,
    wait_for,
)

SHORT_OFFER = "companies-short"
ROWS = 20


@dataclass(frozen=True)
class Space:
    provider: Node
    consumer: Node
    credential: str


@pytest.fixture(scope="module")
def space(module_dir: Path) -> Iterator[Space]:
    provider = make_node(module_dir, "prov", "data.qingdao")
    consumer = make_node(module_dir, "cons", "finance.qingdao")
    trust(provider, consumer)
    trust(consumer, provider)
    publish(provider, module_dir, rows=ROWS)
    publish(provider, module_dir, rows=ROWS, offer=SHORT_OFFER, retention="2s")
    credential = last_line(consumer.cli("app add", APP, check=True))
    try:
        ensure_running(provider, consumer)
        yield Space(provider, consumer, credential)
    finally:
        provider.stop()
        consumer.stop()


def fetched(space: Space, *extra: str, offer: str | None = None) -> tuple[str, str]:
    """A new agreement with one delivery in the consumer's vault: (agreement, delivery)."""
    agreement_id = negotiate(space.consumer, *extra, **({"offer": offer} if offer else {}))
    result = as_json(space.consumer.cli("fetch", agreement_id, "--json"))
    assert result["rows"] == ROWS
    return agreement_id, str(result["delivery_id"])


def vault(space: Space, agreement_id: str) -> tuple[int, int]:
    """(batches, keys) the consumer's vault holds for the agreement."""
    batches = one(space.consumer, "SELECT count(*) FROM vault_batches WHERE agreement_id = ?",
                  agreement_id)
    keys = one(space.consumer, "SELECT count(*) FROM vault_keys WHERE agreement_id = ?",
               agreement_id)
    return int(batches), int(keys)


def provider_receipts(space: Space, agreement_id: str) -> list[dict[str, Any]]:
    rows = sql(space.provider, "SELECT document FROM receipts WHERE agreement_id = ? AND "
                               "role = 'provider'", agreement_id)
    return [json.loads(json.loads(document)["payload"]) for (document,) in rows]


def no_overdue(space: Space, agreement_id: str) -> bool:
    rows = as_json(space.provider.cli("agreements", "--json"))["agreements"]
    return [r["destruction_overdue"] for r in rows if r["agreement_id"] == agreement_id] == [0]


def read(space: Space, agreement_id: str) -> Any:
    return space.consumer.cli("read", agreement_id, "--app", APP, "--token", space.credential)


def test_the_running_consumer_destroys_data_at_its_retention_deadline(space: Space) -> None:
    ensure_running(space.provider, space.consumer)
    agreement_id, delivery_id = fetched(space, offer=SHORT_OFFER)

    wait_for(lambda: sql(space.consumer, "SELECT destroy_reason FROM deliveries WHERE "
                                         "delivery_id = ? AND destroyed_at IS NOT NULL",
                         delivery_id), "the consumer to destroy the delivery")
    assert vault(space, agreement_id)[0] == 0
    [destroyed] = [e for e in audit(space.consumer, "data.destroyed")
                   if e["agreement"] == agreement_id]
    assert (destroyed["reason"], destroyed["deliveries"], destroyed["rows"]) == (
        "retention", [delivery_id], ROWS)
    receipts = wait_for(lambda: provider_receipts(space, agreement_id),
                        "the provider to receive the receipt")
    assert [(r["reason"], r["rows"]) for r in receipts] == [("retention", ROWS)]
    assert sql(space.provider, "SELECT destroy_reason FROM deliveries WHERE delivery_id = ?",
               delivery_id) == [("retention",)]
    assert no_overdue(space, agreement_id)
    assert read(space, agreement_id).returncode == 3


def test_a_revocation_reaches_a_running_consumer_which_destroys_and_proves_it(
        space: Space) -> None:
    ensure_running(space.provider, space.consumer)
    agreement_id, delivery_id = fetched(space)
    assert vault(space, agreement_id) == (1, 1)

    revoked = as_json(space.provider.cli("revoke", agreement_id, "--json"))

    assert revoked["consumer_notified"] is True
    assert vault(space, agreement_id) == (0, 0)  # rows and key, before the notice returned
    assert sql(space.consumer, "SELECT state FROM agreements WHERE agreement_id = ?",
               agreement_id) == [("revoked",)]
    receipts = wait_for(lambda: provider_receipts(space, agreement_id),
                        "the provider to receive the receipt")
    assert [(r["reason"], [d["delivery_id"] for d in r["deliveries"]]) for r in receipts] == [
        ("revoked", [delivery_id])]
    for node, kind in ((space.provider, "agreement.revoked"),
                       (space.consumer, "revocation.received")):
        assert [e for e in audit(node, kind) if e["agreement"] == agreement_id]
    assert no_overdue(space, agreement_id)
    refused = read(space, agreement_id)
    assert refused.returncode == 3
    assert "was revoked" in error_line(refused)


def test_a_consumer_that_was_down_learns_of_a_revocation_at_its_next_fetch(
        space: Space) -> None:
    ensure_running(space.provider, space.consumer)
    agreement_id, delivery_id = fetched(space)
    space.consumer.stop()

    revoked = as_json(space.provider.cli("revoke", agreement_id, "--json"))
    assert revoked["consumer_notified"] is False
    assert vault(space, agreement_id) == (1, 1)  # it does not know yet

    result = space.consumer.cli("fetch", agreement_id)

    assert result.returncode == 3
    assert "revoked" in error_line(result)
    assert vault(space, agreement_id) == (0, 0)
    assert sql(space.consumer, "SELECT destroy_reason FROM deliveries WHERE delivery_id = ?",
               delivery_id) == [("revoked",)]
    assert [r["reason"] for r in provider_receipts(space, agreement_id)] == ["revoked"]


def test_a_receipt_waits_while_the_provider_is_down_and_arrives_when_it_is_back(
        space: Space) -> None:
    ensure_running(space.provider, space.consumer)
    agreement_id, _ = fetched(space)
    space.provider.stop()
    try:
        destroyed = as_json(space.consumer.cli("destroy", agreement_id, "--json"))
        assert (destroyed["rows"], destroyed["receipt_delivered"]) == (ROWS, False)
        assert vault(space, agreement_id) == (0, 0)
        waiting = sql(space.consumer, "SELECT kind FROM outbox WHERE delivered_at IS NULL "
                                      "AND document LIKE ?", f"%{destroyed['receipt_id']}%")
        assert waiting == [("receipt",)]
    finally:
        space.provider.start()

    receipts = wait_for(lambda: provider_receipts(space, agreement_id),
                        "the running consumer to deliver the receipt")
    assert [r["receipt_id"] for r in receipts] == [destroyed["receipt_id"]]
    wait_for(lambda: sql(space.consumer, "SELECT 1 FROM receipts WHERE receipt_id = ? AND "
                                         "acknowledged_at IS NOT NULL",
                         destroyed["receipt_id"]), "the consumer to record the acknowledgement")
    assert no_overdue(space, agreement_id)


def test_the_provider_lists_a_delivery_whose_receipt_is_late(space: Space) -> None:
    ensure_running(space.provider, space.consumer)
    agreement_id, delivery_id = fetched(space)
    home = Home.open(space.provider.home)
    try:
        stored = load_agreement(home, agreement_id)
        completed = one(space.provider, "SELECT completed_at FROM deliveries WHERE "
                                        "delivery_id = ?", delivery_id)
        deadline = completed + stored.agreement.terms.retention * 1000 + OVERDUE_GRACE_MS
        assert overdue(home, stored.agreement, None, now=deadline) == []
        assert overdue(home, stored.agreement, None, now=deadline + 1) == [delivery_id]
        revoked_at = completed + 1000  # a revocation brings the deadline forward
        assert overdue(home, stored.agreement, revoked_at,
                       now=revoked_at + OVERDUE_GRACE_MS + 1) == [delivery_id]
    finally:
        home.close()
    assert no_overdue(space, agreement_id)
