"""Scale curves: delivery at growing sizes, and many consumers fetching from one provider.

Sizes: the plain delivery of ``bench/delivery.py`` at 10k, 100k and 1M rows, each against
the ideal pipeline at the same size. Consumers: 1, 4 and 16 consumer nodes, each with its
own agreement, fetching the same 100k-row dataset at the same moment from one provider
(16 x 1M would not fit the run's time budget); aggregate rows/s against the ideal pipeline
with as many consumers at once, and against one consumer of the product. The consumer
nodes of this curve do not run ``serve``: a fetch needs only the provider to be serving.
"""

from __future__ import annotations

from typing import Any

from bench import delivery
from bench.report import Figure, Report, at_least_ratio, at_most
from bench.workspace import (
    CONSUMER_DOMAIN,
    NodeRef,
    Workspace,
    negotiate,
    reset_peak,
    run_together,
    trust_each_other,
    vm_kb,
)


def fetchers(ws: Workspace, count: int, offer_id: str) -> list[tuple[NodeRef, str]]:
    """``count`` consumer nodes, each with an agreement on ``offer_id`` (made once)."""
    made: list[tuple[NodeRef, str]] = ws.cache.setdefault(f"fetchers:{offer_id}", [])
    provider, _ = ws.pair()
    while len(made) < count:
        node = ws.node(f"scalec{len(made)}", CONSUMER_DOMAIN)
        trust_each_other(provider, node)
        made.append((node, negotiate(node, provider, offer_id)))
    return made[:count]


def product_many(ws: Workspace, count: int, offer_id: str) -> dict[str, Any]:
    provider, _ = ws.pair()
    nodes = fetchers(ws, count, offer_id)
    reset_peak(provider.pid)
    result = delivery.aggregate(run_together([
        ["fetch", str(node.home), agreement] for node, agreement in nodes]))
    result["provider_peak_kb"] = vm_kb(provider.pid)
    return result


def run(ws: Workspace, report: Report) -> None:
    for n in ws.sizes.scale_rows:
        ws.dataset(n)
        got, base = ws.cache.get(f"delivery:plain:{n}"), ws.cache.get(f"ideal:{n}")
        if got is None or base is None:  # not measured by the delivery benchmark: interleave
            reps = 1 if n >= 1_000_000 else max(2, ws.sizes.reps)
            pairs = [(delivery.product(ws, f"plain-{n}"), delivery.ideal(ws, n))
                     for _ in range(reps)]
            got, base = delivery.best([p for p, _ in pairs]), delivery.best([i for _, i in pairs])
        report.add(Figure(f"scale: delivery {n:,} rows", "rows/s", delivery.rate(got),
                          "rows/s", "ideal pipeline", delivery.rate(base)))
    rows, counts = ws.sizes.consumer_rows, ws.sizes.consumers
    ws.dataset(rows)
    offer = f"plain-{rows}"
    single = None
    for count in counts:
        pairs = [(product_many(ws, count, offer), delivery.ideal(ws, rows, consumers=count))
                 for _ in range(ws.sizes.reps)]  # interleaved, as in bench/delivery.py
        got = max((p for p, _ in pairs), key=lambda r: float(r["rows_s"]))
        base = max((i for _, i in pairs), key=lambda r: float(r["rows_s"]))
        label = f"scale: {count} consumer{'s' if count > 1 else ''} x {rows:,} rows at once"
        report.add(Figure(label, "rows/s (all)", got["rows_s"], "rows/s", "ideal pipeline",
                          base["rows_s"]))
        if single is None:
            single = got
        else:
            report.add(Figure(label, "rows/s (all)", got["rows_s"], "rows/s",
                              "product, 1 consumer", single["rows_s"],
                              at_least_ratio(0.8) if count >= 16 else None))
        peak = max(p["provider_peak_kb"] for p, _ in pairs) / 1024
        ideal_peak = max(i["provider_peak_kb"] for _, i in pairs) / 1024
        report.add(Figure(label, "peak RSS provider", peak, "MB", "ideal pipeline", ideal_peak,
                          at_most(delivery.RSS_LIMIT_MB, "MB"), higher_is_better=False))
    report.note(f"scale: consumers curve uses {rows:,} rows per consumer, each consumer a "
                "node of its own with its own agreement, all fetches started together; "
                "rows/s (all) = all rows / (last end - first start); best rate of "
                f"{ws.sizes.reps}, highest peak RSS.")
