"""Negotiation: agreements/s and latency, one consumer and several at once, auto approval.

Each consumer is a node of its own and negotiates in a worker process of its own with the
product's ``connector.consumer.negotiate`` (what ``trustspace negotiate`` runs): a signed
request, the provider's policy decision and signature, the consumer's countersignature
sent back carrying the checkpoint exchange, and the audit entries on both sides; each
consumer keeps one connection to the provider across its negotiations (``negotiate(...,
client=...)``), as the baseline keeps one channel. The provider is a
real ``trustspace serve`` of its own with a fresh audit log, so the figures do not depend
on which benchmarks ran before; a last row repeats one consumer's negotiations after the
provider's log has grown (as a node's log does in service), because the checkpoint
exchange costs more as the log grows. Latency is the whole call: from the request to the
countersignature acknowledged and the checkpoints swapped.

Baseline in the same run: a raw unary gRPC echo of a message of the same size as a request
(no auth, no signing, no storage), by the same number of clients at once.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.report import Figure, Report, at_least, at_most
from bench.workspace import (
    CONSUMER_DOMAIN,
    PLAIN_FIELDS,
    PROVIDER_DOMAIN,
    NodeRef,
    Workspace,
    add_dataset_and_offers,
    run_together,
    trust_each_other,
)

REQUEST_BYTES = 1500  # about the size of a signed request document on the wire
OFFER = "small"


def provider(ws: Workspace) -> NodeRef:
    """This benchmark's provider, serving one small offer with auto approval."""
    if "negotiation-provider" not in ws.cache:
        made = ws.node("negprov", PROVIDER_DOMAIN)
        add_dataset_and_offers(made, "small", ws.csv(100), {OFFER: PLAIN_FIELDS})
        ws.cache["negotiation-provider"] = made.start()
    node: NodeRef = ws.cache["negotiation-provider"]
    return node


def consumers(ws: Workspace, count: int) -> list[NodeRef]:
    """``count`` consumer nodes trusted by the provider (made once, then reused)."""
    made: list[NodeRef] = ws.cache.setdefault("negotiators", [])
    while len(made) < count:
        node = ws.node(f"negc{len(made)}", CONSUMER_DOMAIN)
        trust_each_other(provider(ws), node)
        made.append(node)
    return made[:count]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(results: list[dict[str, Any]]) -> dict[str, float]:
    latencies = [x for r in results for x in r["latencies_ms"]]
    seconds = max(r["ended"] for r in results) - min(r["started"] for r in results)
    return {"rate": len(latencies) / seconds, "p50": statistics.median(latencies),
            "p99": percentile(latencies, 0.99), "count": len(latencies)}


def product(ws: Workspace, clients: int, each: int) -> dict[str, float]:
    name = provider(ws).name
    return summary(run_together([
        ["negotiate", str(node.home), name, OFFER, str(each)]
        for node in consumers(ws, clients)]))


def raw(ws: Workspace, clients: int, each: int) -> dict[str, float]:
    server = ws.server("raw-server", 1)
    return summary(run_together([
        ["raw-unary", str(server.port), str(each), str(REQUEST_BYTES)]
        for _ in range(clients)]))


def grow_log(ws: Workspace, entries: int) -> int:
    """Append ``entries`` to the provider's audit log; returns the log's size."""
    from bench.audit import append_batched

    home = provider(ws).open()
    try:
        append_batched(home, home.audit.size(), entries)
        return int(home.audit.size())
    finally:
        home.close()


def run(ws: Workspace, report: Report) -> None:
    total, many = ws.sizes.negotiations, ws.sizes.negotiators
    fresh: dict[str, float] = {}
    for clients in (1, many):
        each = total // clients
        got, base = product(ws, clients, each), raw(ws, clients, each)
        fresh = fresh or got
        label = f"negotiation, {clients} consumer{'s at once' if clients > 1 else ''}"
        report.add(Figure(label, "agreements/s", got["rate"], "/s", "raw gRPC unary",
                          base["rate"], at_least(300, "/s") if clients > 1 else None))
        report.add(Figure(label, "p50 latency", got["p50"], "ms", "raw gRPC unary",
                          base["p50"], at_most(5, "ms") if clients == 1 else None,
                          higher_is_better=False))
        report.add(Figure(label, "p99 latency", got["p99"], "ms", "raw gRPC unary",
                          base["p99"], higher_is_better=False))
    size = grow_log(ws, ws.sizes.grown_log)
    late = product(ws, 1, max(2, total // 10))
    report.add(Figure(f"negotiation, 1 consumer, provider log at {size:,} entries",
                      "p50 latency", late["p50"], "ms", "same, fresh log", fresh["p50"],
                      at_most(5, "ms"), higher_is_better=False))
    report.note(f"negotiation: {total} agreements per row ({total} by one consumer; "
                f"{total // many} by each of {many} consumer nodes at once), offer with auto "
                f"approval, a provider of its own, one connection per consumer kept open; "
                f"baseline echoes {REQUEST_BYTES} bytes per "
                f"call. The grown-log row: {max(2, total // 10)} more negotiations after "
                f"{ws.sizes.grown_log:,} entries were appended to the provider's log.")
