"""How many rows an envelope carries.

A provider sends ``envelope_rows`` rows per envelope (8000 unless its operator sets another
number), and fewer when its rows are so wide that an envelope would come near its message
size limit: that limit would otherwise refuse the envelope and break the delivery. Either
way the rows per envelope are fixed in the signed start of the delivery, which a resumed
delivery follows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.documents import SignedDoc
from tests.conftest import Node
from tests.integration.conftest import make_node, negotiate, one, publish, trust

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
