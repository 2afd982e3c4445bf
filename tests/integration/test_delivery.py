"""Policy-enforced delivery through the command line, with real nodes.

The provider ``prov`` offers ``companies`` (2,500 rows: three envelopes) and ``big``
(200,000 rows); ``cons`` negotiates, fetches, reads as an application and destroys; ``thief``
is a node the provider trusts, in the consumer's domain, that tries to fetch the consumer's
agreements. Only the provider serves: the consumer's commands contact it directly.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connector.client import PeerClient
from connector.pb import trustspace_pb2 as pb
from node.apps import AppReader
from node.errors import AccessDenied, ContractRefused
from node.home import Home
from node.peers import peer_by_name
from policies.transforms import pseudonym
from tests.conftest import TRUSTSPACE, Node
from tests.integration.conftest import (
    APP,
    as_json,
    audit,
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

ROWS = 2500
BIG_ROWS = 200_000
BIG_OFFER = "big-credit"


@dataclass(frozen=True)
class Space:
    provider: Node
    consumer: Node
    thief: Node
    credential: str  # of the application APP at the consumer
    expiring: str  # an agreement valid for 2 s, made when the space was


@pytest.fixture(scope="module")
def space(module_dir: Path) -> Iterator[Space]:
    provider = make_node(module_dir, "prov", "data.qingdao")
    provider.configure(envelope_rows=1000)  # the envelope counts below
    consumer = make_node(module_dir, "cons", "finance.qingdao")
    thief = make_node(module_dir, "thief", "finance.qingdao")
    trust(provider, consumer, thief)
    trust(consumer, provider)
    trust(thief, provider)
    publish(provider, module_dir, rows=ROWS)
    publish(provider, module_dir, rows=BIG_ROWS, dataset="big", offer=BIG_OFFER)
    provider.start()
    try:
        expiring = negotiate(consumer, "--valid-for", "2s")
        credential = last_line(consumer.cli("app add", APP, check=True))
        yield Space(provider, consumer, thief, credential, expiring)
    finally:
        provider.stop()


def fetch(space: Space, agreement_id: str) -> dict[str, Any]:
    return dict(as_json(space.consumer.cli("fetch", agreement_id, "--json")))


def read(space: Space, agreement_id: str, fmt: str = "jsonl",
         credential: str | None = None, app: str = APP) -> subprocess.CompletedProcess[str]:
    return space.consumer.cli("read", agreement_id, "--app", app, "--token",
                              credential or space.credential, "--format", fmt)


def read_rows(space: Space, agreement_id: str) -> list[dict[str, Any]]:
    result = read(space, agreement_id)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def hash_key(space: Space, agreement_id: str) -> bytes:
    return bytes(one(space.provider, "SELECT hash_key FROM agreements WHERE agreement_id = ?",
                     agreement_id))


def expected_row(i: int, key: bytes) -> dict[str, Any]:
    """Row ``i`` of write_companies as the offer delivers it: masked, hashed, plain."""
    name = f"Zhang San{i}"
    return {"company_id": f"C{i:06d}", "legal_person": name[0] + "*" * (len(name) - 2) + name[-1],
            "phone": pseudonym(key, f"1380000{i:04d}"), "revenue": i * 1.5}


def of_agreement(entries: list[dict[str, Any]], agreement_id: str) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("agreement") == agreement_id]


# ---- the whole path ------------------------------------------------------------------------
def test_fetch_read_and_destroy_with_a_receipt_the_provider_acknowledges(space: Space) -> None:
    provider, consumer = space.provider, space.consumer
    agreement_id = negotiate(consumer)

    fetched = consumer.cli("fetch", agreement_id)
    assert fetched.returncode == 0, fetched.stderr
    assert f"{ROWS} rows in 3 envelopes" in fetched.stdout
    assert fetched.stderr == ""  # no progress bar when the output is no terminal

    key = hash_key(space, agreement_id)
    assert read_rows(space, agreement_id) == [expected_row(i, key) for i in range(ROWS)]
    as_csv = read(space, agreement_id, "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    table = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert table[0] == ["company_id", "legal_person", "phone", "revenue"]
    assert table[1:] == [[str(v) for v in expected_row(i, key).values()] for i in range(ROWS)]
    assert "read 2 of 10" in as_csv.stderr
    reads = of_agreement(audit(consumer, "data.read"), agreement_id)
    assert [(r["app"], r["rows"], r["read_number"]) for r in reads] == [
        (APP, ROWS, 1), (APP, ROWS, 2)]
    assert reads[0]["fields"] == ["company_id", "legal_person", "phone", "revenue"]

    destroyed = as_json(consumer.cli("destroy", agreement_id, "--json"))
    assert (destroyed["rows"], destroyed["receipt_delivered"]) == (ROWS, True)
    assert sql(consumer, "SELECT * FROM vault_batches WHERE agreement_id = ?", agreement_id) == []
    assert sql(consumer, "SELECT * FROM vault_keys WHERE agreement_id = ?", agreement_id) == []
    receipts = sql(provider, "SELECT receipt_id FROM receipts WHERE agreement_id = ? AND "
                             "role = 'provider'", agreement_id)
    assert receipts == [(destroyed["receipt_id"],)]
    rows = as_json(provider.cli("agreements", "--json"))["agreements"]
    mine = [r for r in rows if r["agreement_id"] == agreement_id]
    assert [(r["destruction_overdue"], r["held"]) for r in mine] == [(0, 0)]
    assert sql(provider, "SELECT count(*) FROM deliveries WHERE agreement_id = ? AND "
                         "destroyed_at IS NULL", agreement_id) == [(0,)]
    [made] = of_agreement(audit(consumer, "data.destroyed"), agreement_id)
    [received] = of_agreement(audit(provider, "receipt.received"), agreement_id)
    assert made["receipt_hash"] == received["receipt_hash"]
    assert of_agreement(audit(consumer, "receipt.acknowledged"), agreement_id)

    after = read(space, agreement_id)
    assert after.returncode == 3
    assert "no delivery to read" in error_line(after)


def test_the_last_permitted_read_destroys_the_delivery(space: Space) -> None:
    agreement_id = negotiate(space.consumer, "--max-reads", "2")
    delivery_id = fetch(space, agreement_id)["delivery_id"]

    first, second = read(space, agreement_id), read(space, agreement_id)
    assert (first.returncode, second.returncode) == (0, 0)
    assert len(second.stdout.splitlines()) == ROWS
    assert ("(read 2 of 2); the delivery is now destroyed and the receipt acknowledged"
            in second.stderr)
    third = read(space, agreement_id)
    assert third.returncode == 3
    assert "no delivery to read" in error_line(third)

    assert sql(space.consumer, "SELECT destroy_reason FROM deliveries WHERE delivery_id = ?",
               delivery_id) == [("max_reads",)]
    assert sql(space.consumer, "SELECT * FROM vault_batches WHERE delivery_id = ?",
               delivery_id) == []
    receipt = sql(space.provider, "SELECT document FROM receipts WHERE agreement_id = ?",
                  agreement_id)
    body = json.loads(json.loads(receipt[0][0])["payload"])
    assert (body["reason"], body["rows"]) == ("max_reads", ROWS)
    assert [d["delivery_id"] for d in body["deliveries"]] == [delivery_id]


def test_applications_read_through_the_python_api_as_through_read(space: Space) -> None:
    agreement_id = negotiate(space.consumer, "--max-reads", "1")
    delivery_id = fetch(space, agreement_id)["delivery_id"]
    reader = AppReader(str(space.consumer.home), APP, space.credential)
    try:
        key = hash_key(space, agreement_id)
        assert list(reader.rows(agreement_id)) == [expected_row(i, key) for i in range(ROWS)]
        with pytest.raises(ContractRefused, match="no delivery to read"):
            list(reader.rows(agreement_id))  # the one permitted read destroyed it
    finally:
        reader.close()
    assert sql(space.consumer, "SELECT reads, destroy_reason FROM deliveries WHERE "
                               "delivery_id = ?", delivery_id) == [(1, "max_reads")]
    assert sql(space.consumer, "SELECT kind FROM outbox WHERE delivered_at IS NULL AND "
                               "document LIKE ?", f"%{delivery_id}%") == [("receipt",)]


def test_the_credential_is_shown_once_and_only_its_hash_is_kept(space: Space) -> None:
    stored = one(space.consumer, "SELECT credential_hash FROM apps WHERE app_id = ?", APP)
    assert bytes(stored) == hashlib.sha256(space.credential.encode()).digest()
    for path in (p for p in space.consumer.home.rglob("*") if p.is_file()):
        assert space.credential.encode() not in path.read_bytes(), path.name


# ---- refused reads -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def held(space: Space) -> str:
    """An agreement whose delivery sits in the vault, and a second registered application."""
    agreement_id = negotiate(space.consumer)
    fetch(space, agreement_id)
    return agreement_id


@pytest.fixture(scope="module")
def other_credential(space: Space) -> str:
    return last_line(space.consumer.cli("app add", "other-app", check=True))


# id: (application, credential: "own", "other", or a literal, what the error says)
READ_REFUSALS: dict[str, tuple[str, str, str]] = {
    "another application with its own credential": (
        "other-app", "other", "names another application, not other-app"),
    "the agreement's application with a wrong credential": (
        APP, "tsapp_wrong", "not registered or its credential is wrong"),
    "the agreement's application with another's credential": (
        APP, "other", "not registered or its credential is wrong"),
    "an application never registered": (
        "ghost-app", "own", "not registered or its credential is wrong"),
}


@pytest.mark.parametrize("app, credential, says", READ_REFUSALS.values(),
                         ids=READ_REFUSALS.keys())
def test_only_the_named_application_with_its_credential_may_read(
        space: Space, held: str, other_credential: str, app: str, credential: str,
        says: str) -> None:
    token = {"own": space.credential, "other": other_credential}.get(credential, credential)
    reads_before = sql(space.consumer, "SELECT reads FROM deliveries WHERE agreement_id = ?",
                       held)
    result = read(space, held, credential=token, app=app)
    assert result.returncode == 3
    assert says in error_line(result)
    assert result.stdout == ""
    assert sql(space.consumer, "SELECT reads FROM deliveries WHERE agreement_id = ?",
               held) == reads_before
    refused = of_agreement(audit(space.consumer, "data.read_refused"), held)
    assert refused[-1]["app"] == app
    assert token not in json.dumps(audit(space.consumer))  # credentials are never logged


# ---- refused fetches -----------------------------------------------------------------------
def _beyond_frequency(space: Space) -> str:
    agreement_id = negotiate(space.consumer, "--max-deliveries", "1", "--period", "1d")
    fetch(space, agreement_id)
    return agreement_id


def _revoked(space: Space) -> str:
    agreement_id = negotiate(space.consumer)
    space.provider.cli("revoke", agreement_id, check=True)
    return agreement_id


def _expired(space: Space) -> str:
    def expired() -> bool:
        rows = as_json(space.provider.cli("agreements", "--json"))["agreements"]
        return [r["state"] for r in rows if r["agreement_id"] == space.expiring] == ["expired"]

    wait_for(expired, "the 2-second agreement to expire")
    return space.expiring


# id: (make the agreement, the provider's reason code, what the error says)
FETCH_REFUSALS: dict[str, tuple[Callable[[Space], str], str]] = {
    "a fetch beyond the frequency": (_beyond_frequency, "at most 1 delivery per 1d"),
    "a fetch after revocation": (_revoked, "was revoked"),
    "a fetch after expiry": (_expired, "expired"),
}


@pytest.mark.parametrize("make, says", FETCH_REFUSALS.values(), ids=FETCH_REFUSALS.keys())
def test_the_provider_refuses_a_fetch_the_agreement_does_not_allow(
        space: Space, make: Callable[[Space], str], says: str) -> None:
    agreement_id = make(space)
    provider_deliveries = sql(space.provider, "SELECT delivery_id FROM deliveries WHERE "
                                              "agreement_id = ?", agreement_id)

    result = space.consumer.cli("fetch", agreement_id)

    assert result.returncode == 3, result.stderr
    assert says in error_line(result)
    assert sql(space.provider, "SELECT delivery_id FROM deliveries WHERE agreement_id = ?",
               agreement_id) == provider_deliveries
    refused = of_agreement(audit(space.provider, "delivery.refused"), agreement_id)
    assert refused and says in refused[-1]["message"]
    assert refused[-1]["reason"] == "contract_refused"


def test_a_node_that_is_not_the_agreements_consumer_cannot_fetch_it(
        space: Space, held: str) -> None:
    consumer_delivery = one(space.consumer, "SELECT delivery_id FROM deliveries WHERE "
                                            "agreement_id = ?", held)
    thief = Home.open(space.thief.home)
    before = sql(space.provider, "SELECT * FROM deliveries")
    try:
        with PeerClient(thief, peer_by_name(thief, "prov")) as client:
            for request in (pb.FetchRequest(agreement_id=held),
                            pb.FetchRequest(agreement_id=held,
                                            resume_delivery_id=consumer_delivery)):
                with pytest.raises(AccessDenied, match="is not the consumer of agreement"):
                    list(client.stream(client.transfer.Fetch, request))
    finally:
        thief.close()
    assert sql(space.provider, "SELECT * FROM deliveries") == before
    refused = of_agreement(audit(space.provider, "delivery.refused"), held)
    assert [(r["consumer"], r["reason"]) for r in refused] == [
        (thief.node_id, "access_denied")] * 2
    # recorded once, by the delivery code, not again as a refused call
    assert not [r for r in audit(space.provider, "call.refused") if r["caller"] == thief.node_id]


def test_a_revocation_stops_a_delivery_under_way_and_the_refusal_is_recorded(
        space: Space) -> None:
    agreement_id = negotiate(space.consumer, offer=BIG_OFFER)  # 200 envelopes
    consumer = Home.open(space.consumer.home)
    try:
        with PeerClient(consumer, peer_by_name(consumer, "prov")) as client:
            frames = client.stream(client.transfer.Fetch, pb.FetchRequest(
                agreement_id=agreement_id))
            assert next(frames).HasField("start")
            assert next(frames).HasField("envelope")
            space.provider.cli("revoke", agreement_id, check=True)
            with pytest.raises(ContractRefused, match="the delivery stops"):
                for frame in frames:  # what flow control let the provider send before
                    assert frame.HasField("envelope")
    finally:
        consumer.close()
    sent = of_agreement(audit(space.provider, "envelope.sent"), agreement_id)
    assert 1 <= len(sent) < BIG_ROWS // 1000
    [refused] = [r for r in audit(space.provider, "call.refused")
                 if "the delivery stops" in r["message"] and agreement_id in r["message"]]
    assert (refused["method"], refused["reason"]) == (
        "/trustspace.v1.Transfer/Fetch", "contract_refused")


# ---- a fetch cut off -----------------------------------------------------------------------
def test_a_fetch_killed_midway_completes_the_same_delivery_without_duplicates(
        space: Space) -> None:
    consumer, provider = space.consumer, space.provider
    agreement_id = negotiate(consumer, offer=BIG_OFFER)
    process = subprocess.Popen([str(TRUSTSPACE), "fetch", str(consumer.home), agreement_id],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not sql(consumer, "SELECT 1 FROM vault_batches WHERE agreement_id = ? LIMIT 1",
                      agreement_id):
            assert process.poll() is None, "the fetch ended before it could be cut off"
            assert time.monotonic() < deadline, "the fetch stored nothing"
            time.sleep(0.005)
    finally:
        process.kill()
        process.wait()
    cut = sql(consumer, "SELECT delivery_id, completed_at, envelopes FROM deliveries WHERE "
                        "agreement_id = ?", agreement_id)
    assert len(cut) == 1 and cut[0][1] is None and 0 < cut[0][2] < 200, cut

    resumed = fetch(space, agreement_id)

    assert resumed == {"agreement_id": agreement_id, "delivery_id": cut[0][0],
                       "rows": BIG_ROWS, "envelopes": 200, "resumed": True}
    for node in (consumer, provider):
        assert sql(node, "SELECT count(*), sum(completed_at IS NOT NULL) FROM deliveries "
                         "WHERE agreement_id = ?", agreement_id) == [(1, 1)]
        assert len(of_agreement(audit(node, "delivery.started"), agreement_id)) == 1
        assert len(of_agreement(audit(node, "delivery.completed"), agreement_id)) == 1
    assert sql(consumer, "SELECT count(*), count(DISTINCT seq), sum(rows) FROM vault_batches "
                         "WHERE agreement_id = ?", agreement_id) == [(200, 200, BIG_ROWS)]
    received = of_agreement(audit(consumer, "envelope.received"), agreement_id)
    assert sorted(e["seq"] for e in received) == list(range(200))
    rows = read(space, agreement_id, "csv")
    assert rows.returncode == 0, rows.stderr
    ids = [line.split(",", 1)[0] for line in rows.stdout.splitlines()[1:]]
    assert sorted(ids) == [f"C{i:06d}" for i in range(BIG_ROWS)]


# ---- what reaches the consumer ----------------------------------------------------------------
def test_no_original_value_is_on_the_consumers_disk_after_a_fetch(space: Space) -> None:
    # an open connection keeps the write-ahead log on disk, as a running node does
    keep_wal = sqlite3.connect(space.consumer.home / "node.db")
    try:
        keep_wal.execute("SELECT count(*) FROM deliveries").fetchall()
        agreement_id = negotiate(space.consumer)
        fetch(space, agreement_id)
        assert read(space, agreement_id).returncode == 0
        files = [p for p in space.consumer.home.rglob("*") if p.is_file()]
        assert {p.name for p in files} >= {"node.db", "node.db-wal"}
        originals = [b"Zhang San", b"Zhang San123", b"13800000123", b"13800002499",
                     b"C000123", b"C002499"]
        for path in files:
            data = path.read_bytes()
            for value in originals:
                assert value not in data, f"{value!r} is readable in {path.name}"
    finally:
        keep_wal.close()


def test_masked_and_hashed_values_and_pseudonyms_unlinkable_across_agreements(
        space: Space) -> None:
    first, second = negotiate(space.consumer), negotiate(space.consumer)
    for agreement_id in (first, second):
        fetch(space, agreement_id)
    rows_first, rows_second = read_rows(space, first), read_rows(space, second)

    assert rows_first[5]["legal_person"] == "Z********5"
    assert rows_first[1234]["legal_person"] == "Z***********4"
    assert rows_first == [expected_row(i, hash_key(space, first)) for i in range(ROWS)]
    assert rows_second == [expected_row(i, hash_key(space, second)) for i in range(ROWS)]
    phones_first = [r["phone"] for r in rows_first]
    phones_second = [r["phone"] for r in rows_second]
    assert len(set(phones_first)) == ROWS  # one pseudonym per phone number
    assert not set(phones_first) & set(phones_second)  # nothing to join the two on
    # stable within one agreement: a second delivery carries the same pseudonyms
    fetch(space, first)
    assert [r["phone"] for r in read_rows(space, first)] == phones_first


def test_deliveries_running_at_once_each_bring_every_row_once(space: Space) -> None:
    """More deliveries at once than the provider makes envelopes for at a time: the others
    wait their turn batch by batch, and each completes whole."""
    agreements = [negotiate(space.consumer) for _ in range(5)]
    fetches = [subprocess.Popen([str(TRUSTSPACE), "fetch", str(space.consumer.home), agreement,
                                 "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for agreement in agreements]
    results = [process.communicate(timeout=120) for process in fetches]
    assert [process.returncode for process in fetches] == [0] * 5, [e for _, e in results]
    assert [json.loads(out)["rows"] for out, _ in results] == [ROWS] * 5
    sent = audit(space.provider, "envelope.sent")
    for agreement in agreements:
        assert sorted(e["seq"] for e in of_agreement(sent, agreement)) == [0, 1, 2]
        assert len(read_rows(space, agreement)) == ROWS
