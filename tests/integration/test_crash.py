"""Crash safety: SIGKILL the provider or the consumer at named points, restart, and check
that nothing was lost or duplicated (issue 7, point 3).

Each case picks a crash point (``node/faults.py``) and the process that must reach it — a
``trustspace`` command or the ``serve`` of a node — runs the operation, checks that the
process died by SIGKILL, restarts what died, runs the operation again or lets the running
node's timed work finish it (outbox retries, pending-request polling, retention), and then
checks the promises of PRODUCT.md, "What must always hold": every row delivered exactly
once and read back exactly as projected, the delivery counted once on the provider, every
receipt on the provider and no message left in either outbox, every audit entry there once,
and ``audit verify`` of both exports clean.

Both nodes serve for the whole module; each case makes its own agreement, so the cases do
not interfere. A case that needs a node's outbox to stay untouched while a command sends
(else the node could win the race and the command would never reach its crash point)
stops that node's ``serve`` for the command and starts it again for the recovery.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from connector.consumer import SENDING_S
from policies.transforms import pseudonym
from tests.conftest import TRUSTSPACE, Node, run_cli
from tests.integration.conftest import (
    APP,
    OFFER_ID,
    PURPOSE,
    as_json,
    audit,
    error_line,
    last_line,
    make_node,
    one,
    publish,
    sql,
    trust,
    wait_for,
)

CRASH_ENV = "TRUSTSPACE_CRASH_AT"
ROWS = 3500  # four envelopes of at most 1000 rows
ENVELOPES = 4
ONCE_OFFER = "companies-once"  # max_reads = 1: the first read destroys the delivery
NEGOTIATE = ("negotiate", "prov", OFFER_ID, "--purpose", PURPOSE, "--app", APP)


# ---- the space: two serving nodes and ways to kill them ----------------------------------
@dataclass(frozen=True)
class Space:
    provider: Node
    consumer: Node
    credential: str
    base: Path
    cards: tuple[Path, ...]
    armed: set[str] = field(default_factory=set)  # nodes whose serve carries a crash point

    # processes -----------------------------------------------------------------------
    def serve(self, node: Node, crash_at: str | None = None) -> None:
        """(Re)start the node's ``serve``, armed to die at ``crash_at`` when given."""
        node.stop()
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        if crash_at:
            env[CRASH_ENV] = crash_at
            self.armed.add(node.name)
        else:
            self.armed.discard(node.name)
        log_path = self.base / f"{node.name}.serve.log"
        with log_path.open("a") as log:
            log.write(f"---- serve{' armed: ' + crash_at if crash_at else ''}\n")
            log.flush()
            start = log.tell()
            process = subprocess.Popen([str(TRUSTSPACE), "serve", str(node.home)], stdout=log,
                                       stderr=subprocess.STDOUT, env=env, text=True)
        node.process = process

        def up() -> bool:  # it says so once it listens; a crash point may come first
            with log_path.open() as log:
                log.seek(start)
                return "serving on" in log.read() or process.poll() is not None

        wait_for(up, f"{node.name} to serve")
        assert crash_at or process.poll() is None, f"{node.name}'s serve exited at its start"

    def stopped(self, node: Node) -> None:
        """Stop the node's ``serve`` cleanly (SIGTERM) while a command must act alone."""
        node.stop()

    def died(self, node: Node) -> None:
        """The node's ``serve`` was killed by its crash point: check that, then restart it."""
        process = node.process
        assert process is not None, f"{node.name} was not serving"
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{node.name} never reached its crash point") from None
        node.process = None
        assert code == -signal.SIGKILL, f"{node.name}'s serve exited {code}, not by SIGKILL"
        self.serve(node)

    def crash(self, node: Node, point: str, command: str,
              *args: str) -> subprocess.CompletedProcess[str]:
        """Run a command armed to die at ``point``; it must die there, by SIGKILL."""
        env = {**os.environ, CRASH_ENV: point}
        result = subprocess.run([str(TRUSTSPACE), command, str(node.home), *args],
                                capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == -signal.SIGKILL, (
            f"trustspace {command} exited {result.returncode} instead of dying at {point}: "
            f"{result.stderr}")
        return result

    # operations that must succeed ----------------------------------------------------
    def negotiate(self, offer: str = OFFER_ID, *extra: str) -> str:
        return last_line(self.consumer.cli("negotiate", "prov", offer, "--purpose", PURPOSE,
                                           "--app", APP, *extra, check=True))

    def fetch(self, agreement_id: str) -> dict[str, Any]:
        fetched = dict(as_json(self.consumer.cli("fetch", agreement_id, "--json")))
        assert (fetched["rows"], fetched["envelopes"]) == (ROWS, ENVELOPES), fetched
        return fetched

    def read(self, agreement_id: str) -> subprocess.CompletedProcess[str]:
        return self.consumer.cli("read", agreement_id, "--app", APP, "--token",
                                 self.credential)

    def agreed(self, offer: str = OFFER_ID) -> str:
        """A new agreement with one complete delivery in the vault."""
        agreement_id = self.negotiate(offer)
        self.fetch(agreement_id)
        return agreement_id


@pytest.fixture(scope="module")
def space(module_dir: Path) -> Iterator[Space]:
    provider = make_node(module_dir, "prov", "data.qingdao")
    provider.configure(envelope_rows=1000)  # the envelope counts below
    consumer = make_node(module_dir, "cons", "finance.qingdao")
    trust(provider, consumer)
    trust(consumer, provider)
    publish(provider, module_dir, rows=ROWS)
    publish(provider, module_dir, rows=ROWS, offer=ONCE_OFFER, max_reads=1)
    credential = last_line(consumer.cli("app add", APP, check=True))
    made = Space(provider, consumer, credential, module_dir,
                 (provider.card_file(), consumer.card_file()))
    try:
        made.serve(provider)
        made.serve(consumer)
        yield made
    finally:
        provider.stop()
        consumer.stop()


# ---- what must hold after every crash -----------------------------------------------------
def of(entries: list[dict[str, Any]], agreement_id: str) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("agreement") == agreement_id]


def expected_rows(space: Space, agreement_id: str) -> list[dict[str, Any]]:
    """The dataset projected as the offer says: masked, hashed with the agreement's key."""
    key = bytes(one(space.provider, "SELECT hash_key FROM agreements WHERE agreement_id = ?",
                    agreement_id))
    rows = []
    for i in range(ROWS):
        name = f"Zhang San{i}"
        rows.append({"company_id": f"C{i:06d}",
                     "legal_person": name[0] + "*" * (len(name) - 2) + name[-1],
                     "phone": pseudonym(key, f"1380000{i:04d}"), "revenue": i * 1.5})
    return rows


def rows_of(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def reads_back(space: Space, agreement_id: str) -> None:
    """A read returns exactly the dataset's projected rows: none lost, none twice."""
    result = space.read(agreement_id)
    assert result.returncode == 0, result.stderr
    assert rows_of(result) == expected_rows(space, agreement_id)


def active(space: Space, agreement_id: str) -> None:
    """Signed by both nodes, on both nodes, each signature audited once."""
    quiet(space)
    query = "SELECT state FROM agreements WHERE agreement_id = ?"
    assert one(space.provider, query, agreement_id) == one(space.consumer, query,
                                                           agreement_id) == "active"
    for node in (space.provider, space.consumer):
        for kind in ("negotiation.decided", "agreement.signed"):
            assert len(of(audit(node, kind), agreement_id)) == 1, (node.name, kind)


def delivered_once(space: Space, agreement_id: str) -> str:
    """One complete delivery on both sides, each envelope sent and received exactly once."""
    deliveries = "SELECT delivery_id, rows, envelopes FROM deliveries WHERE agreement_id = ? " \
                 "AND role = ? AND completed_at IS NOT NULL"
    sent = sql(space.provider, deliveries, agreement_id, "provider")
    received = sql(space.consumer, deliveries, agreement_id, "consumer")
    assert len(sent) == 1 and sent[0][1:] == (ROWS, ENVELOPES), sent
    assert received == sent
    assert one(space.provider, "SELECT count(*) FROM deliveries WHERE agreement_id = ?",
               agreement_id) == 1, "the provider counted more than one delivery"
    assert one(space.consumer, "SELECT count(*) FROM deliveries WHERE agreement_id = ?",
               agreement_id) == 1, "the consumer holds more than one delivery"
    for node, kind in ((space.provider, "envelope.sent"), (space.consumer, "envelope.received")):
        entries = of(audit(node), agreement_id)
        assert sorted(e["seq"] for e in entries if e["kind"] == kind) == list(range(ENVELOPES))
        for once in ("delivery.started", "delivery.completed"):
            assert [e["delivery"] for e in entries if e["kind"] == once] == [sent[0][0]], once
    return str(sent[0][0])


def receipt_once(space: Space, agreement_id: str, reason: str) -> None:
    """Destroyed once, with one receipt the provider holds and the consumer saw acknowledged."""
    provider, consumer = space.provider, space.consumer
    wait_for(lambda: of(audit(provider, "receipt.received"), agreement_id),
             f"the provider to receive the receipt of {agreement_id}")
    quiet(space)  # and the acknowledgement to reach the consumer
    destroyed = of(audit(consumer, "data.destroyed"), agreement_id)
    assert [d["reason"] for d in destroyed] == [reason]
    received = of(audit(provider, "receipt.received"), agreement_id)
    assert [r["receipt_hash"] for r in received] == [destroyed[0]["receipt_hash"]]
    receipts = "SELECT count(*) FROM receipts WHERE agreement_id = ?"
    assert one(provider, receipts, agreement_id) == one(consumer, receipts, agreement_id) == 1
    assert one(consumer, "SELECT acknowledged_at FROM receipts WHERE agreement_id = ?",
               agreement_id) is not None
    assert len(of(audit(consumer, "receipt.acknowledged"), agreement_id)) == 1
    undestroyed = "SELECT count(*) FROM deliveries WHERE agreement_id = ? AND destroyed_at IS NULL"
    assert one(provider, undestroyed, agreement_id) == 0
    assert one(consumer, undestroyed, agreement_id) == 0
    assert one(consumer, "SELECT count(*) FROM vault_batches WHERE agreement_id = ?",
               agreement_id) == 0


def consumer_requests(space: Space) -> set[str]:
    return {r for (r,) in sql(space.consumer, "SELECT request_id FROM requests")}


def new_request(space: Space, before: set[str]) -> str:
    (request_id,) = consumer_requests(space) - before
    return request_id


def request_state(space: Space, request_id: str) -> tuple[str, str | None]:
    (row,) = sql(space.consumer, "SELECT state, agreement_id FROM requests WHERE "
                                 "request_id = ?", request_id)
    return str(row[0]), row[1]


def quiet(space: Space) -> None:
    """Both outboxes empty: every countersignature, receipt and revocation arrived."""
    undelivered = "SELECT count(*) FROM outbox WHERE delivered_at IS NULL"
    for node in (space.provider, space.consumer):
        wait_for(partial(lambda n: one(n, undelivered) == 0, node),
                 f"{node.name}'s outbox to empty")


def settled(space: Space, label: str) -> None:
    """Nothing waits in an outbox; both exports verify clean against both cards."""
    quiet(space)
    logs = []
    for node in (space.provider, space.consumer):
        log = space.base / f"{label}.{node.name}.jsonl"
        node.cli("audit export", "--out", log, check=True)
        logs.append(log)
    cards = [arg for card in space.cards for arg in ("--card", card)]
    result = run_cli("audit", "verify", *logs, *cards)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- negotiate ----------------------------------------------------------------------------
def negotiate_dies_before_sending_its_request(s: Space) -> None:
    before = consumer_requests(s)
    s.crash(s.consumer, "negotiate.requested", *NEGOTIATE)
    request_id = new_request(s, before)
    assert not sql(s.provider, "SELECT 1 FROM requests WHERE request_id = ?", request_id)
    # the running node asks the provider, which never saw it: once no command can still be
    # sending it, the request is over
    wait_for(lambda: request_state(s, request_id)[0] == "rejected",
             "the consumer to learn that its request never arrived", timeout=SENDING_S + 30)
    agreement_id = s.agreed()
    active(s, agreement_id)
    delivered_once(s, agreement_id)


def negotiate_dies_after_the_provider_agreed(s: Space) -> None:
    before = consumer_requests(s)
    s.crash(s.consumer, "negotiate.answered", *NEGOTIATE)
    request_id = new_request(s, before)
    # the running node asks again, countersigns and sends the countersignature
    wait_for(lambda: request_state(s, request_id)[0] == "agreed",
             "the consumer's node to settle the request")
    agreement_id = str(request_state(s, request_id)[1])
    active(s, agreement_id)
    s.fetch(agreement_id)
    delivered_once(s, agreement_id)
    reads_back(s, agreement_id)


def negotiate_dies_before_sending_the_countersignature(s: Space) -> None:
    before = consumer_requests(s)
    s.crash(s.consumer, "negotiate.countersigned", *NEGOTIATE)
    agreement_id = str(request_state(s, new_request(s, before))[1])
    active(s, agreement_id)  # the running node's outbox sends it


def negotiate_dies_after_the_provider_took_the_countersignature(s: Space) -> None:
    s.stopped(s.consumer)
    before = consumer_requests(s)
    s.crash(s.consumer, "outbox.countersign_sent", *NEGOTIATE)
    agreement_id = str(request_state(s, new_request(s, before))[1])
    assert one(s.provider, "SELECT state FROM agreements WHERE agreement_id = ?",
               agreement_id) == "active"
    assert one(s.consumer, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL") == 1
    s.serve(s.consumer)  # sends it again; the provider takes it once
    active(s, agreement_id)


def consumer_node_dies_resending_the_countersignature(s: Space) -> None:
    s.stopped(s.consumer)
    before = consumer_requests(s)
    s.crash(s.consumer, "negotiate.countersigned", *NEGOTIATE)
    agreement_id = str(request_state(s, new_request(s, before))[1])
    s.serve(s.consumer, "outbox.countersign_sent")
    s.died(s.consumer)
    active(s, agreement_id)


def provider_dies_after_deciding_a_request(s: Space) -> None:
    s.serve(s.provider, "provider.request_decided")
    before = consumer_requests(s)
    result = s.consumer.cli(*NEGOTIATE)
    assert result.returncode == 1, result.stderr
    error_line(result)
    s.died(s.provider)
    request_id = new_request(s, before)
    wait_for(lambda: request_state(s, request_id)[0] == "agreed",
             "the consumer's node to learn the provider's decision")
    agreement_id = str(request_state(s, request_id)[1])
    active(s, agreement_id)
    s.fetch(agreement_id)
    delivered_once(s, agreement_id)


def provider_dies_after_taking_the_countersignature(s: Space) -> None:
    s.serve(s.provider, "provider.countersigned")
    agreement_id = s.negotiate()  # the countersignature stays in the outbox
    s.died(s.provider)
    # the checkpoint exchange it carried committed with it: after the activation's entry
    # comes at most the consumer's checkpoint kept (none when it was held already), held,
    # and then nothing until the node started again
    [(signed,)] = sql(s.provider, "SELECT seq FROM audit_entries WHERE kind = 'agreement.signed' "
                                  "AND json_extract(entry, '$.body.agreement') = ?", agreement_id)
    after = sql(s.provider, "SELECT kind, json_extract(entry, '$.body.size') FROM audit_entries "
                            "WHERE seq > ? ORDER BY seq", signed)
    kept = after[:1] if after[:1] and after[0][0] == "checkpoint.cosigned" else []
    assert [kind for kind, _ in after[len(kept):len(kept) + 1]] in ([], ["node.started"]), after
    for _, size in kept:
        assert sql(s.provider, "SELECT 1 FROM audit_peer_checkpoints WHERE size = ?", size)
    active(s, agreement_id)


def provider_dies_inside_the_transaction_deciding_a_request(s: Space) -> None:
    s.serve(s.provider, "audit.appended@2")  # 1 is node.started
    before = consumer_requests(s)
    result = s.consumer.cli(*NEGOTIATE)
    assert result.returncode == 1, result.stderr
    s.died(s.provider)
    request_id = new_request(s, before)
    assert not sql(s.provider, "SELECT 1 FROM requests WHERE request_id = ?", request_id)
    assert not [e for e in audit(s.provider) if e.get("request") == request_id]
    wait_for(lambda: request_state(s, request_id)[0] == "rejected",
             "the consumer to learn that the provider kept nothing of its request",
             timeout=SENDING_S + 30)
    agreement_id = s.agreed()
    active(s, agreement_id)


# ---- fetch --------------------------------------------------------------------------------
def consumer_envelopes(s: Space, agreement_id: str) -> int:
    return int(one(s.consumer, "SELECT coalesce(sum(envelopes), -1) FROM deliveries WHERE "
                               "agreement_id = ?", agreement_id))


def fetch_again(s: Space, agreement_id: str, *, resumed: bool | None = True) -> None:
    fetched = s.fetch(agreement_id)
    if resumed is not None:
        assert fetched["resumed"] is resumed, fetched
    delivered_once(s, agreement_id)
    reads_back(s, agreement_id)


def fetch_dies_after_recording_the_delivery_start(s: Space) -> None:
    agreement_id = s.negotiate()
    s.crash(s.consumer, "fetch.started", "fetch", agreement_id)
    assert consumer_envelopes(s, agreement_id) == 0
    fetch_again(s, agreement_id)


def fetch_dies_after_storing_the_third_envelope(s: Space) -> None:
    agreement_id = s.negotiate()
    s.crash(s.consumer, "fetch.envelope_stored@3", "fetch", agreement_id)
    assert consumer_envelopes(s, agreement_id) == 3
    fetch_again(s, agreement_id)


def fetch_dies_after_storing_the_last_envelope(s: Space) -> None:
    agreement_id = s.negotiate()
    s.crash(s.consumer, f"fetch.envelope_stored@{ENVELOPES}", "fetch", agreement_id)
    assert consumer_envelopes(s, agreement_id) == ENVELOPES
    assert one(s.consumer, "SELECT completed_at FROM deliveries WHERE agreement_id = ?",
               agreement_id) is None
    fetch_again(s, agreement_id)


def fetch_dies_after_completing(s: Space) -> None:
    agreement_id = s.negotiate()
    s.crash(s.consumer, "fetch.completed", "fetch", agreement_id)
    delivered_once(s, agreement_id)  # nothing to run again: the delivery is whole
    reads_back(s, agreement_id)


def fetch_dies_inside_the_second_envelope_transaction(s: Space) -> None:
    agreement_id = s.negotiate()
    # 1 delivery.started, 2 the first envelope, 3 the second: rolled back with its rows
    s.crash(s.consumer, "audit.appended@3", "fetch", agreement_id)
    assert consumer_envelopes(s, agreement_id) == 1
    assert one(s.consumer, "SELECT count(*) FROM vault_batches WHERE agreement_id = ?",
               agreement_id) == 1
    assert len(of(audit(s.consumer, "envelope.received"), agreement_id)) == 1
    fetch_again(s, agreement_id)


def provider_dies_after_starting_a_delivery(s: Space) -> None:
    agreement_id = s.negotiate()
    s.serve(s.provider, "provider.delivery_started")
    assert s.consumer.cli("fetch", agreement_id).returncode == 1
    s.died(s.provider)
    assert consumer_envelopes(s, agreement_id) == -1  # its start never arrived
    (opened,) = sql(s.provider, "SELECT delivery_id FROM deliveries WHERE agreement_id = ?",
                    agreement_id)
    fetch_again(s, agreement_id, resumed=False)  # new to the consumer, the same delivery
    assert delivered_once(s, agreement_id) == opened[0]


def provider_dies_after_recording_the_third_envelope(s: Space) -> None:
    agreement_id = s.negotiate()
    s.serve(s.provider, "provider.envelope_recorded@3")
    assert s.consumer.cli("fetch", agreement_id).returncode == 1
    s.died(s.provider)
    assert one(s.provider, "SELECT count(*) FROM envelopes JOIN deliveries USING "
                           "(delivery_id) WHERE agreement_id = ?", agreement_id) == 3
    assert consumer_envelopes(s, agreement_id) <= 2
    fetch_again(s, agreement_id, resumed=None)  # whether the start arrived is up to TCP


def provider_dies_after_finishing_a_delivery(s: Space) -> None:
    agreement_id = s.negotiate()
    s.serve(s.provider, "provider.delivery_finished")
    assert s.consumer.cli("fetch", agreement_id).returncode == 1
    s.died(s.provider)
    assert one(s.provider, "SELECT completed_at IS NOT NULL FROM deliveries WHERE "
                           "agreement_id = ?", agreement_id) == 1
    assert one(s.consumer, "SELECT count(*) FROM deliveries WHERE agreement_id = ? AND "
                           "completed_at IS NOT NULL", agreement_id) == 0
    fetch_again(s, agreement_id, resumed=None)


def provider_dies_inside_the_transaction_recording_an_envelope(s: Space) -> None:
    agreement_id = s.negotiate()
    # 1 node.started, 2 delivery.started, 3 the first envelope, 4 the second: rolled back
    s.serve(s.provider, "audit.appended@4")
    assert s.consumer.cli("fetch", agreement_id).returncode == 1
    s.died(s.provider)
    assert len(of(audit(s.provider, "envelope.sent"), agreement_id)) == 1
    assert one(s.provider, "SELECT count(*) FROM envelopes JOIN deliveries USING "
                           "(delivery_id) WHERE agreement_id = ?", agreement_id) == 1
    fetch_again(s, agreement_id, resumed=None)


# ---- read ---------------------------------------------------------------------------------
def reads_of(s: Space, agreement_id: str) -> int:
    return int(one(s.consumer, "SELECT reads FROM deliveries WHERE agreement_id = ?",
                   agreement_id))


def read_dies_after_counting_the_read(s: Space) -> None:
    agreement_id = s.agreed()
    s.crash(s.consumer, "read.counted", "read", agreement_id, "--app", APP, "--token",
            s.credential)
    assert reads_of(s, agreement_id) == 1  # counted: a crash never gives a free read
    reads_back(s, agreement_id)
    assert reads_of(s, agreement_id) == 2
    assert [r["read_number"] for r in of(audit(s.consumer, "data.read"), agreement_id)] \
        == [1, 2]
    delivered_once(s, agreement_id)


def last_read_dies_after_its_output_before_destroying(s: Space) -> None:
    agreement_id = s.agreed(ONCE_OFFER)
    result = s.crash(s.consumer, "read.output", "read", agreement_id, "--app", APP,
                     "--token", s.credential)
    assert rows_of(result) == expected_rows(s, agreement_id)  # written out before the crash
    # the running node destroys a delivery read max_reads times and sends the receipt
    receipt_once(s, agreement_id, "max_reads")
    again = s.read(agreement_id)
    assert again.returncode == 3 and "no delivery to read" in error_line(again)


def read_dies_inside_the_transaction_counting_it(s: Space) -> None:
    agreement_id = s.agreed()
    s.crash(s.consumer, "audit.appended@1", "read", agreement_id, "--app", APP, "--token",
            s.credential)
    assert reads_of(s, agreement_id) == 0
    assert not of(audit(s.consumer, "data.read"), agreement_id)
    reads_back(s, agreement_id)
    assert reads_of(s, agreement_id) == 1


# ---- destroy and receipts -----------------------------------------------------------------
def destroy_dies_before_sending_the_receipt(s: Space) -> None:
    agreement_id = s.agreed()
    s.crash(s.consumer, "destroy.destroyed", "destroy", agreement_id)
    receipt_once(s, agreement_id, "requested")  # the running node's outbox sends it
    again = s.consumer.cli("destroy", agreement_id)  # run again: nothing is left to destroy
    assert again.returncode == 3 and "holds no data" in error_line(again)


def destroy_dies_after_the_provider_acknowledged(s: Space) -> None:
    agreement_id = s.agreed()
    s.stopped(s.consumer)
    s.crash(s.consumer, "outbox.receipt_sent", "destroy", agreement_id)
    assert len(of(audit(s.provider, "receipt.received"), agreement_id)) == 1
    assert one(s.consumer, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL") == 1
    s.serve(s.consumer)  # sends it again; the provider keeps it once
    receipt_once(s, agreement_id, "requested")


def destroy_dies_inside_its_transaction(s: Space) -> None:
    agreement_id = s.agreed()
    s.crash(s.consumer, "audit.appended@1", "destroy", agreement_id)
    assert one(s.consumer, "SELECT count(*) FROM vault_batches WHERE agreement_id = ?",
               agreement_id) == ENVELOPES
    assert one(s.consumer, "SELECT count(*) FROM receipts WHERE agreement_id = ?",
               agreement_id) == 0
    reads_back(s, agreement_id)  # nothing of the destruction happened
    destroyed = as_json(s.consumer.cli("destroy", agreement_id, "--json"))
    assert destroyed["rows"] == ROWS and destroyed["receipt_delivered"] is True
    receipt_once(s, agreement_id, "requested")


def provider_dies_after_storing_a_receipt(s: Space) -> None:
    agreement_id = s.agreed()
    s.serve(s.provider, "provider.receipt_stored")
    destroyed = as_json(s.consumer.cli("destroy", agreement_id, "--json"))
    assert destroyed["receipt_delivered"] is False
    s.died(s.provider)
    receipt_once(s, agreement_id, "requested")


def provider_dies_inside_the_transaction_storing_a_receipt(s: Space) -> None:
    agreement_id = s.agreed()
    s.serve(s.provider, "audit.appended@2")  # 1 is node.started, 2 receipt.received
    destroyed = as_json(s.consumer.cli("destroy", agreement_id, "--json"))
    assert destroyed["receipt_delivered"] is False
    s.died(s.provider)
    assert one(s.provider, "SELECT count(*) FROM receipts WHERE agreement_id = ?",
               agreement_id) == 0
    receipt_once(s, agreement_id, "requested")  # the consumer's node sends it again


def consumer_node_dies_resending_a_receipt(s: Space) -> None:
    agreement_id = s.agreed()
    s.stopped(s.consumer)
    s.crash(s.consumer, "destroy.destroyed", "destroy", agreement_id)
    s.serve(s.consumer, "outbox.receipt_sent")
    s.died(s.consumer)
    receipt_once(s, agreement_id, "requested")


def consumer_node_dies_inside_a_retention_destruction(s: Space) -> None:
    s.stopped(s.consumer)  # else its node could destroy the delivery before it is armed
    agreement_id = s.negotiate(OFFER_ID, "--retention", "2s")
    s.fetch(agreement_id)
    s.serve(s.consumer, "audit.appended@2")  # 1 is node.started, 2 the destruction
    s.died(s.consumer)
    receipt_once(s, agreement_id, "retention")


# ---- revoke -------------------------------------------------------------------------------
def revoke_dies_before_notifying_the_consumer(s: Space) -> None:
    agreement_id = s.agreed()
    s.crash(s.provider, "revoke.revoked", "revoke", agreement_id)
    receipt_once(s, agreement_id, "revoked")  # the provider's node notifies the consumer
    assert len(of(audit(s.consumer, "revocation.received"), agreement_id)) == 1


def revoke_dies_after_the_consumer_took_the_revocation(s: Space) -> None:
    agreement_id = s.agreed()
    s.stopped(s.provider)
    s.crash(s.provider, "outbox.revocation_sent", "revoke", agreement_id)
    assert one(s.consumer, "SELECT state FROM agreements WHERE agreement_id = ?",
               agreement_id) == "revoked"
    s.serve(s.provider)  # sends the revocation again; the consumer's receipt arrives
    receipt_once(s, agreement_id, "revoked")
    assert len(of(audit(s.consumer, "revocation.received"), agreement_id)) == 1


def fetch_dies_after_recording_a_revocation_it_learned(s: Space) -> None:
    agreement_id = s.agreed()
    s.stopped(s.consumer)  # so the consumer learns of the revocation at its next fetch
    revoked = as_json(s.provider.cli("revoke", agreement_id, "--json"))
    assert revoked["consumer_notified"] is False
    s.crash(s.consumer, "revocation.recorded", "fetch", agreement_id)
    assert one(s.consumer, "SELECT state FROM agreements WHERE agreement_id = ?",
               agreement_id) == "revoked"
    s.serve(s.consumer)  # its timed work destroys what the revoked agreement still holds
    receipt_once(s, agreement_id, "revoked")
    again = s.consumer.cli("fetch", agreement_id)
    assert again.returncode == 3 and "revoked" in error_line(again)
    assert len(of(audit(s.consumer, "revocation.received"), agreement_id)) == 1


def consumer_node_dies_after_recording_a_revocation(s: Space) -> None:
    agreement_id = s.agreed()
    s.serve(s.consumer, "revocation.recorded")
    revoked = as_json(s.provider.cli("revoke", agreement_id, "--json"))
    assert revoked["consumer_notified"] is False
    s.died(s.consumer)
    receipt_once(s, agreement_id, "revoked")  # its timed work destroys what it still holds
    assert len(of(audit(s.consumer, "revocation.received"), agreement_id)) == 1


@dataclass(frozen=True)
class Crash:
    point: str
    process: str  # which process dies
    run: Callable[[Space], None]


CASES = {
    # negotiate
    "negotiate: consumer command, request signed, not sent":
        Crash("negotiate.requested", "consumer command",
              negotiate_dies_before_sending_its_request),
    "negotiate: consumer command, provider agreed, not countersigned":
        Crash("negotiate.answered", "consumer command", negotiate_dies_after_the_provider_agreed),
    "negotiate: consumer command, countersigned, not sent":
        Crash("negotiate.countersigned", "consumer command",
              negotiate_dies_before_sending_the_countersignature),
    "negotiate: consumer command, countersignature taken, not marked sent":
        Crash("outbox.countersign_sent", "consumer command",
              negotiate_dies_after_the_provider_took_the_countersignature),
    "negotiate: consumer node, countersignature resent, not marked sent":
        Crash("outbox.countersign_sent", "consumer serve",
              consumer_node_dies_resending_the_countersignature),
    "negotiate: provider node, request decided, not answered":
        Crash("provider.request_decided", "provider serve",
              provider_dies_after_deciding_a_request),
    "negotiate: provider node, countersignature stored, not acknowledged":
        Crash("provider.countersigned", "provider serve",
              provider_dies_after_taking_the_countersignature),
    "negotiate: provider node, inside the decision's transaction":
        Crash("audit.appended@2", "provider serve",
              provider_dies_inside_the_transaction_deciding_a_request),
    # fetch
    "fetch: consumer command, delivery start recorded":
        Crash("fetch.started", "consumer command",
              fetch_dies_after_recording_the_delivery_start),
    "fetch: consumer command, 3rd envelope stored":
        Crash("fetch.envelope_stored@3", "consumer command",
              fetch_dies_after_storing_the_third_envelope),
    "fetch: consumer command, last envelope stored, end not received":
        Crash("fetch.envelope_stored@4", "consumer command",
              fetch_dies_after_storing_the_last_envelope),
    "fetch: consumer command, delivery completed":
        Crash("fetch.completed", "consumer command", fetch_dies_after_completing),
    "fetch: consumer command, inside the 2nd envelope's transaction":
        Crash("audit.appended@3", "consumer command",
              fetch_dies_inside_the_second_envelope_transaction),
    "fetch: provider node, delivery started, start not sent":
        Crash("provider.delivery_started", "provider serve",
              provider_dies_after_starting_a_delivery),
    "fetch: provider node, 3rd envelope recorded, not sent":
        Crash("provider.envelope_recorded@3", "provider serve",
              provider_dies_after_recording_the_third_envelope),
    "fetch: provider node, delivery finished, end not sent":
        Crash("provider.delivery_finished", "provider serve",
              provider_dies_after_finishing_a_delivery),
    "fetch: provider node, inside the 2nd envelope's transaction":
        Crash("audit.appended@4", "provider serve",
              provider_dies_inside_the_transaction_recording_an_envelope),
    # read
    "read: consumer command, read counted, nothing output":
        Crash("read.counted", "consumer command", read_dies_after_counting_the_read),
    "read: consumer command, last permitted read output, not destroyed":
        Crash("read.output", "consumer command",
              last_read_dies_after_its_output_before_destroying),
    "read: consumer command, inside the counting transaction":
        Crash("audit.appended@1", "consumer command", read_dies_inside_the_transaction_counting_it),
    # destroy and receipt delivery
    "destroy: consumer command, destroyed, receipt not sent":
        Crash("destroy.destroyed", "consumer command", destroy_dies_before_sending_the_receipt),
    "destroy: consumer command, receipt acknowledged, not marked sent":
        Crash("outbox.receipt_sent", "consumer command",
              destroy_dies_after_the_provider_acknowledged),
    "destroy: consumer command, inside the destruction's transaction":
        Crash("audit.appended@1", "consumer command", destroy_dies_inside_its_transaction),
    "destroy: provider node, receipt stored, not acknowledged":
        Crash("provider.receipt_stored", "provider serve", provider_dies_after_storing_a_receipt),
    "destroy: provider node, inside the receipt's transaction":
        Crash("audit.appended@2", "provider serve",
              provider_dies_inside_the_transaction_storing_a_receipt),
    "destroy: consumer node, receipt resent, not marked sent":
        Crash("outbox.receipt_sent", "consumer serve", consumer_node_dies_resending_a_receipt),
    "retention: consumer node, inside the destruction's transaction":
        Crash("audit.appended@2", "consumer serve",
              consumer_node_dies_inside_a_retention_destruction),
    # revoke
    "revoke: provider command, revoked, consumer not notified":
        Crash("revoke.revoked", "provider command", revoke_dies_before_notifying_the_consumer),
    "revoke: provider command, consumer notified, not marked sent":
        Crash("outbox.revocation_sent", "provider command",
              revoke_dies_after_the_consumer_took_the_revocation),
    "revoke: consumer command, revocation learned at fetch, data not destroyed":
        Crash("revocation.recorded", "consumer command",
              fetch_dies_after_recording_a_revocation_it_learned),
    "revoke: consumer node, revocation recorded, data not destroyed":
        Crash("revocation.recorded", "consumer serve",
              consumer_node_dies_after_recording_a_revocation),
}


def test_the_table_covers_twenty_points_of_both_sides() -> None:
    points = {(c.point, c.process) for c in CASES.values()}
    assert len(points) >= 20
    assert {c.process for c in CASES.values()} == {
        "consumer command", "consumer serve", "provider command", "provider serve"}


def both_serving(space: Space) -> None:
    for node in (space.provider, space.consumer):
        if node.process is None or node.name in space.armed:  # a case that failed half-way
            space.serve(node)


def log_of(node: Node) -> list[tuple[int, bytes]]:
    return [(int(seq), bytes(h)) for seq, h in sql(node, "SELECT seq, hash FROM audit_entries "
                                                         "ORDER BY seq")]


@pytest.mark.parametrize("crash", CASES.values(), ids=CASES.keys())
def test_a_crash_loses_and_duplicates_nothing(space: Space, crash: Crash,
                                              request: pytest.FixtureRequest) -> None:
    both_serving(space)
    before = {node.name: log_of(node) for node in (space.provider, space.consumer)}
    crash.run(space)
    for node in (space.provider, space.consumer):  # every committed entry is still there
        assert log_of(node)[:len(before[node.name])] == before[node.name], node.name
    settled(space, re.sub(r"\W+", "-", request.node.callspec.id))


def test_regression_the_node_cut_a_slow_last_read_short_and_sent_an_empty_second_receipt(
        space: Space) -> None:
    """The running node destroys a delivery read max_reads times, for the reader that
    crashed before it could (``read.output`` above). It did so also while a live last read
    was still writing its rows to a slow application: the read stopped after the first
    batch yet exited 0, and the reader's own destruction then wrote a second, empty receipt.
    """
    both_serving(space)
    agreement_id = space.agreed(ONCE_OFFER)
    reader = subprocess.Popen([str(TRUSTSPACE), "read", str(space.consumer.home), agreement_id,
                               "--app", APP, "--token", space.credential],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # nobody takes its output yet: it waits on a full pipe while the node destroys
    wait_for(lambda: one(space.consumer, "SELECT destroyed_at FROM deliveries WHERE "
                                         "agreement_id = ?", agreement_id),
             "the consumer's node to destroy the delivery read max_reads times")
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert [json.loads(line) for line in out.splitlines()] == expected_rows(space, agreement_id)
    receipt_once(space, agreement_id, "max_reads")
    settled(space, "slow-last-read")
