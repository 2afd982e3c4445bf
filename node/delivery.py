"""The provider's side of a delivery: enforce the agreement, then produce envelopes.

:func:`start_delivery` checks, in order, that the caller is the agreement's consumer, the
agreement is countersigned, not revoked, not expired, and — for a new delivery — within
its frequency; a refusal is audited and raised. :func:`envelopes` then streams the dataset
projected in SQL to the agreed fields, transformed, in batches, sealed and signed; it checks
the agreement again before each envelope, so a revocation stops a running delivery.
A resumed delivery produces byte-identical headers, so it is the same delivery.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace

from node.agreements import StoredAgreement, load_agreement
from node.audit import now_ms
from node.datasets import Dataset, get_dataset
from node.documents import SignedDoc
from node.envelopes import FIRST_PREV, EnvelopeHeader, digest_of, encode_batch, seal
from node.errors import AccessDenied, ContractRefused, NotFound, TrustspaceError
from node.home import Home
from node.ids import check_id, new_id
from node.peers import Peer
from node.store.db import connect
from policies.durations import format_duration
from policies.transforms import Projector, make_projector

ENVELOPE_SHARE = 4
"""A new delivery's envelopes are sized to hold at most 1/ENVELOPE_SHARE of the node's message
size limit, as measured on its first rows: the rest is headroom for rows wider than those."""
SAMPLE_ROWS = 100
READER_CACHE_KIB = 64
_PRODUCERS = threading.BoundedSemaphore(2)
"""Deliveries making an envelope at the same moment in this process. Two keep the
interpreter busy — one runs Python while the other is in SQLite, libsodium or SHA-256, which
let go of the interpreter's lock — and every further one only takes that lock from the
others, batch after batch: with 16 deliveries at once the provider spent 4.3 us of CPU a
row without this bound and 3.1 us with it (2.5 us for one delivery alone)."""


@dataclass(frozen=True)
class DeliveryPlan:
    stored: StoredAgreement
    consumer: Peer
    start: SignedDoc
    delivery_id: str
    from_seq: int
    batch_rows: int
    rows: int
    envelopes: int


def start_delivery(home: Home, consumer: Peer, agreement_id: str, resume_delivery_id: str,
                   from_seq: int) -> DeliveryPlan:
    try:
        check_id(agreement_id, what="agreement id")
        stored = load_agreement(home, agreement_id, role="provider")
        # 1. the caller is this agreement's consumer
        if stored.peer_id != consumer.node_id:
            raise AccessDenied(f"{consumer.name} is not the consumer of agreement "
                               f"{agreement_id}")
        # 2.-4. countersigned, not revoked, not expired
        reason = stored.refusal()
        if reason:
            raise ContractRefused(reason)
        if resume_delivery_id:
            return _resume(home, stored, consumer, resume_delivery_id, from_seq)
        # 5. a delivery the consumer never recorded (the stream broke before its start
        #    arrived) is offered again from its beginning instead of counting a second one
        open_delivery = home.conn.execute(
            "SELECT delivery_id FROM deliveries WHERE agreement_id = ? AND role = 'provider' "
            "AND completed_at IS NULL AND destroyed_at IS NULL ORDER BY started_at DESC "
            "LIMIT 1", (agreement_id,)).fetchone()
        if open_delivery is not None:
            return _resume(home, stored, consumer, open_delivery[0], 0)
        # 6. within the frequency: at most max_deliveries started in any period
        terms = stored.agreement.terms
        since = now_ms() - terms.period * 1000
        started = home.conn.execute(
            "SELECT count(*) FROM deliveries WHERE agreement_id = ? AND role = 'provider' "
            "AND started_at > ?", (agreement_id, since)).fetchone()[0]
        if started >= terms.max_deliveries:
            period = format_duration(terms.period)
            allowed = terms.max_deliveries
            raise ContractRefused(
                f"the frequency of agreement {agreement_id} is at most {allowed} "
                f"deliver{'y' if allowed == 1 else 'ies'} per {period}, and {started} "
                f"{'was' if started == 1 else 'were'} made in the last {period}")
    except NotFound:
        raise ContractRefused(f"there is no agreement {agreement_id!r} with {consumer.name}") \
            from None
    except TrustspaceError as e:
        # a refused caller's id is bounded: a peer must not be able to bloat the log
        home.record("delivery.refused", {"agreement": agreement_id[:80],
                                         "consumer": consumer.node_id, "reason": e.code,
                                         "message": e.message[:300]})
        e.recorded = True
        raise
    return _new(home, stored, consumer)


def _new(home: Home, stored: StoredAgreement, consumer: Peer) -> DeliveryPlan:
    agreement = stored.agreement
    dataset = get_dataset(home, agreement.dataset_id)
    batch_rows = _batch_rows(home, stored, dataset)
    batches = -(-dataset.row_count // batch_rows)
    with home.change() as change:
        number = change.conn.execute("SELECT count(*) FROM deliveries WHERE agreement_id = ?",
                                     (agreement.agreement_id,)).fetchone()[0] + 1
        delivery_id = new_id("dlv")
        started = now_ms()
        start = SignedDoc.create("delivery-start", {
            "delivery_id": delivery_id, "agreement_id": agreement.agreement_id,
            "number": number, "fields": list(agreement.terms.field_names),
            "batch_rows": batch_rows, "rows": dataset.row_count, "envelopes": batches,
            "started_at": started}, home.keys)
        change.conn.execute(
            "INSERT INTO deliveries (delivery_id, agreement_id, role, number, start_document, "
            "started_at) VALUES (?, ?, 'provider', ?, ?, ?)",
            (delivery_id, agreement.agreement_id, number, start.to_json(), started))
        change.audit.append("delivery.started", {
            "agreement": agreement.agreement_id, "delivery": delivery_id, "number": number,
            "document": start.to_dict()})
    return DeliveryPlan(stored, consumer, start, delivery_id, 0, batch_rows,
                        dataset.row_count, batches)


def _batch_rows(home: Home, stored: StoredAgreement, dataset: Dataset) -> int:
    """Rows per envelope for a new delivery: the node's ``envelope_rows``, fewer if rows
    this wide would fill more than a share of the message size limit.

    Every envelope costs each side a signature, a transaction, an audit entry and a wake-up
    of its process, so larger envelopes cost less per row; with many deliveries at once
    those per-envelope costs are what the machine runs out of first (BENCHMARKS.md).
    """
    columns, project = _projection(stored, dataset)
    sample = project(home.conn.execute(f'SELECT {columns} FROM "{dataset.row_table}" '
                                       "ORDER BY _row LIMIT ?", (SAMPLE_ROWS,)).fetchall())
    rows = home.config.envelope_rows
    if not sample:
        return rows
    width = len(encode_batch(sample)) / len(sample)
    return max(1, min(rows, int(home.config.max_message_bytes / ENVELOPE_SHARE / width)))


def _projection(stored: StoredAgreement,
                dataset: Dataset) -> tuple[str, Projector]:
    """The agreed columns as SQL, and the agreement's transforms over fetched rows."""
    terms = stored.agreement.terms
    columns = ", ".join(dataset.column_of(f) for f in terms.field_names)
    return columns, make_projector(terms.transforms, stored.hash_key or b"")


def _resume(home: Home, stored: StoredAgreement, consumer: Peer, delivery_id: str,
            from_seq: int) -> DeliveryPlan:
    row = home.conn.execute(
        "SELECT start_document, destroyed_at FROM deliveries WHERE delivery_id = ? AND "
        "agreement_id = ? AND role = 'provider'", (delivery_id, stored.agreement_id)).fetchone()
    if row is None:
        raise ContractRefused(f"delivery {delivery_id!r} is not part of agreement "
                              f"{stored.agreement_id}")
    if row[1] is not None:  # the consumer's receipt says it is gone: no second copy of it
        raise ContractRefused(f"delivery {delivery_id} was destroyed, as the consumer's "
                              "receipt says; it cannot be resumed")
    start = SignedDoc.from_json(row[0])
    body = start.body()
    if from_seq > body["envelopes"]:
        raise ContractRefused(f"delivery {delivery_id} has only {body['envelopes']} envelopes")
    return DeliveryPlan(stored, consumer, start, delivery_id, from_seq, body["batch_rows"],
                        body["rows"], body["envelopes"])


def envelopes(home: Home, plan: DeliveryPlan) -> Iterator[tuple[bytes, bytes, bytes]]:
    """Sealed, signed envelopes from ``plan.from_seq`` on; audit entries for new ones."""
    agreement = plan.stored.agreement
    dataset = get_dataset(home, agreement.dataset_id)
    columns, project = _projection(plan.stored, dataset)
    fields = agreement.terms.field_names
    box_key = plan.consumer.card.box_key
    prev = _digest_before(home, plan)
    source = connect(home.path / "node.db")  # a reader of its own: writes go on meanwhile
    # It reads each page once, in order: a small page cache keeps a stream's memory small.
    source.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
    try:
        cursor = source.execute(f'SELECT {columns} FROM "{dataset.row_table}" WHERE _row > ? '
                                "ORDER BY _row", (plan.from_seq * plan.batch_rows,))
        for seq in range(plan.from_seq, plan.envelopes):
            with _PRODUCERS:
                reason = _refusal_now(home, plan.stored)
                if reason:
                    raise ContractRefused(reason + "; the delivery stops")
                rows = project(cursor.fetchmany(plan.batch_rows))
                plaintext = encode_batch(rows)
                header = EnvelopeHeader(agreement.agreement_id, plan.delivery_id, seq,
                                        len(rows), fields, digest_of(plaintext), prev)
                _record_sent(home, header)
                made = [seal(home.keys, box_key, header, plaintext)]
                del rows, plaintext
            prev = header.digest
            yield made.pop()  # popped: nothing here holds the envelope while it is sent
    finally:
        source.close()


def finish(home: Home, plan: DeliveryPlan) -> SignedDoc:
    """The signed end of the delivery (idempotent: a resumed delivery ends the same way)."""
    row = home.conn.execute("SELECT end_document FROM deliveries WHERE delivery_id = ?",
                            (plan.delivery_id,)).fetchone()
    if row[0]:
        return SignedDoc.from_json(row[0])
    count, rows, last = home.conn.execute(
        "SELECT count(*), coalesce(sum(rows), 0), (SELECT digest FROM envelopes WHERE "
        "delivery_id = ?1 ORDER BY seq DESC LIMIT 1) FROM envelopes WHERE delivery_id = ?1",
        (plan.delivery_id,)).fetchone()
    completed = now_ms()
    end = SignedDoc.create("delivery-end", {
        "delivery_id": plan.delivery_id, "agreement_id": plan.stored.agreement_id,
        "envelopes": count, "rows": rows, "last_digest": last or FIRST_PREV,
        "completed_at": completed}, home.keys)
    with home.change() as change:
        change.conn.execute(
            "UPDATE deliveries SET end_document = ?, completed_at = ?, envelopes = ?, rows = ?, "
            "last_digest = ? WHERE delivery_id = ?",
            (end.to_json(), completed, count, rows, last or FIRST_PREV, plan.delivery_id))
        change.audit.append("delivery.completed", {
            "agreement": plan.stored.agreement_id, "delivery": plan.delivery_id,
            "envelopes": count, "rows": rows, "last_digest": last or FIRST_PREV,
            "document": end.to_dict()})
    return end


def _refusal_now(home: Home, stored: StoredAgreement) -> str | None:
    """The agreement's refusal as of now. Only its state (a revocation) can change while a
    delivery runs, so that alone is read again: loading and parsing the whole agreement
    before every envelope cost about 5% of the provider's CPU (bench/delivery.py)."""
    row = home.conn.execute("SELECT state FROM agreements WHERE agreement_id = ?",
                            (stored.agreement_id,)).fetchone()
    if row is None:
        return load_agreement(home, stored.agreement_id).refusal()  # raises NotFound
    return replace(stored, state=str(row[0])).refusal()


def _record_sent(home: Home, header: EnvelopeHeader) -> None:
    with home.change() as change:
        added = change.conn.execute(
            "INSERT OR IGNORE INTO envelopes (delivery_id, seq, rows, digest) VALUES (?, ?, ?, ?)",
            (header.delivery, header.seq, header.rows, header.digest)).rowcount
        if added:
            change.audit.append("envelope.sent", _envelope_entry(header))


def _envelope_entry(header: EnvelopeHeader) -> dict[str, object]:
    return {"agreement": header.agreement, "delivery": header.delivery, "seq": header.seq,
            "rows": header.rows, "fields": list(header.fields), "digest": header.digest,
            "prev": header.prev}


def _digest_before(home: Home, plan: DeliveryPlan) -> str:
    if plan.from_seq == 0:
        return FIRST_PREV
    row = home.conn.execute("SELECT digest FROM envelopes WHERE delivery_id = ? AND seq = ?",
                            (plan.delivery_id, plan.from_seq - 1)).fetchone()
    if row is None:
        raise ContractRefused(f"delivery {plan.delivery_id} cannot resume at envelope "
                              f"{plan.from_seq}")
    return str(row[0])


envelope_entry = _envelope_entry
__all__ = ["start_delivery", "envelopes", "finish", "envelope_entry", "json"]
