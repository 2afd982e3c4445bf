"""How many rows an envelope carries.

A provider sends ``envelope_rows`` rows per envelope (8000 unless its operator sets another
number), and fewer when its rows are so wide that an envelope would come near its message
size limit: that limit would otherwise refuse the envelope and break the delivery. Either
way the rows per envelope are fixed in the signed start of the delivery, which a resumed
delivery follows.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.documents import SignedDoc
from tests.conftest import TRUSTSPACE, Node
from tests.integration.conftest import make_node, negotiate, one, publish, sql, trust

ROWS = 9000
SECRETBOX_OVERHEAD = 40  # nonce and MAC around each batch in the vault


@pytest.fixture(scope="module")
def nodes(module_dir: Path) -> Iterator[tuple[Node, Node]]:
    provider = make_node(module_dir, "prov", "data.qingdao")
    consumer = make_node(module_dir, "cons", "finance.qingdao")
    trust(provider, consumer)
    trust(consumer, provider)
    publish(provider, module_dir, rows=ROWS)
    try:
        yield provider, consumer
    finally:
        provider.stop()


def fetched(provider: Node, consumer: Node) -> tuple[dict[str, object], int]:
    """A new agreement fetched once: the delivery's signed start, and the envelopes held."""
    provider.start()
    try:
        agreement_id = negotiate(consumer)
        consumer.cli("fetch", agreement_id, check=True)
    finally:
        provider.stop()
    start = SignedDoc.from_json(one(consumer, "SELECT start_document FROM deliveries WHERE "
                                              "agreement_id = ?", agreement_id)).body()
    held = one(consumer, "SELECT count(*) FROM vault_batches WHERE agreement_id = ?",
               agreement_id)
    rows = one(consumer, "SELECT rows FROM deliveries WHERE agreement_id = ?", agreement_id)
    assert rows == ROWS
    return start, int(held)


def test_envelopes_carry_8000_rows_unless_the_operator_says_otherwise(
        nodes: tuple[Node, Node]) -> None:
    provider, consumer = nodes
    start, held = fetched(provider, consumer)
    assert (start["batch_rows"], start["envelopes"], held) == (8000, 2, 2)

    provider.configure(envelope_rows=2500)
    start, held = fetched(provider, consumer)
    assert (start["batch_rows"], start["envelopes"], held) == (2500, 4, 4)


def test_wide_rows_are_sent_in_smaller_envelopes_that_fit_the_message_limit(
        nodes: tuple[Node, Node]) -> None:
    """With a 64 KiB message limit, 8000 rows to an envelope would be refused: the provider
    sends fewer, sized on the first rows to a quarter of the limit (later rows here are a
    little wider, which the rest of the limit absorbs), and every row arrives."""
    provider, consumer = nodes
    limit = 65536
    provider.configure(envelope_rows=8000, max_message_bytes=limit)
    start, held = fetched(provider, consumer)
    batch_rows = int(str(start["batch_rows"]))
    assert held == start["envelopes"] == -(-ROWS // batch_rows)
    largest = one(consumer, "SELECT max(length(sealed)) FROM vault_batches WHERE delivery_id "
                            "= ?", start["delivery_id"]) - SECRETBOX_OVERHEAD
    assert largest <= limit // 2
    assert largest / batch_rows * 8000 > limit  # what 8000 rows to an envelope would take


def test_a_resumed_delivery_keeps_the_envelope_size_of_its_start(
        nodes: tuple[Node, Node]) -> None:
    """The consumer dies after storing the first envelope; the operator then changes
    envelope_rows and restarts the provider. The fetch resumes the same delivery, in the
    envelopes its signed start announced, and every row arrives once."""
    provider, consumer = nodes
    provider.configure(envelope_rows=4000, max_message_bytes=16 * 1024 * 1024)
    provider.start()
    try:
        agreement_id = negotiate(consumer)
        armed = {**os.environ, "TRUSTSPACE_CRASH_AT": "fetch.envelope_stored@1"}
        died = subprocess.run([str(TRUSTSPACE), "fetch", str(consumer.home), agreement_id],
                              capture_output=True, text=True, timeout=60, env=armed)
        assert died.returncode == -signal.SIGKILL, died.stderr
    finally:
        provider.stop()
    provider.configure(envelope_rows=1000)
    provider.start()
    try:
        consumer.cli("fetch", agreement_id, check=True)
    finally:
        provider.stop()
    deliveries = sql(consumer, "SELECT delivery_id, envelopes, rows FROM deliveries WHERE "
                               "agreement_id = ?", agreement_id)
    assert [(envelopes, rows) for _, envelopes, rows in deliveries] == [(3, ROWS)]
    start = SignedDoc.from_json(one(consumer, "SELECT start_document FROM deliveries WHERE "
                                              "agreement_id = ?", agreement_id)).body()
    assert (start["batch_rows"], start["envelopes"]) == (4000, 3)
    assert sql(consumer, "SELECT seq, rows FROM vault_batches WHERE delivery_id = ? ORDER BY seq",
               deliveries[0][0]) == [(0, 4000), (1, 4000), (2, 1000)]
