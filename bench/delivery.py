"""Delivery: a dataset from the provider's table to the consumer's vault, every guarantee on.

The provider and the consumer are real nodes (``trustspace serve``); the consumer's fetch
runs in a worker process of its own (the product's ``connector.consumer.fetch``, as
``trustspace fetch`` runs it), so rows/s is end to end: authenticated call, projection and
transforms, signing, encryption, the provider's audit, verification, decryption, the
vault and the consumer's audit. Twice: three plain fields, and three fields of which one
is masked and one hashed.

Baselines, in the same run and over the same rows: raw gRPC streaming of the same projected
bytes in the same batches (no security, no storage), and the ideal pipeline
(``bench/baselines/ideal_pipeline.py``). Peak RSS is each process's high-water mark.
"""

from __future__ import annotations

from typing import Any

from bench.report import Figure, Report, at_least_ratio, at_most
from bench.workspace import Workspace, reset_peak, run_together, run_worker, vm_kb
from node.config import DEFAULT_ENVELOPE_ROWS

RSS_LIMIT_MB = 150


def product(ws: Workspace, offer_id: str, profile: str = "") -> dict[str, Any]:
    """One fetch of the consumer's agreement on ``offer_id``, with both processes' peaks."""
    provider, consumer = ws.pair()
    agreement = ws.agreement(offer_id)
    reset_peak(provider.pid)
    args = ["fetch", str(consumer.home), agreement] + (["--profile", profile] if profile else [])
    result = run_worker(*args)
    result["provider_peak_kb"] = vm_kb(provider.pid)
    return result


def ideal(ws: Workspace, n: int, consumers: int = 1) -> dict[str, Any]:
    """The ideal pipeline over n rows, to ``consumers`` consumers at once (aggregated)."""
    server = ws.server("ideal-provider", n)
    reset_peak(server.pid)
    results = run_together([
        ["ideal-consumer", str(server.port), str(ws.path("baseline", f"dest-{i}.db")), str(n)]
        for i in range(consumers)])
    merged = aggregate(results)
    merged["provider_peak_kb"] = vm_kb(server.pid)
    return merged


def raw(ws: Workspace, n: int) -> dict[str, Any]:
    server = ws.server("raw-server", n)
    return run_worker("raw-stream", str(server.port), str(n))


def aggregate(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several concurrent transfers as one: all rows over first start to last end."""
    started = min(r["started"] for r in results)
    ended = max(r["ended"] for r in results)
    rows = sum(r["rows"] for r in results)
    return {"rows": rows, "seconds": ended - started, "rows_s": rows / (ended - started),
            "peak_rss_kb": max(r["peak_rss_kb"] for r in results),
            "vault_bytes": sum(r.get("vault_bytes", 0) for r in results),
            "wire_bytes": sum(r.get("wire_bytes", 0) for r in results)}


def rate(result: dict[str, Any]) -> float:
    return float(result["rows"]) / float(result["seconds"])


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return max(runs, key=rate)


def run(ws: Workspace, report: Report) -> None:
    n, reps = ws.sizes.delivery_rows, ws.sizes.reps
    ws.dataset(n)
    runs: dict[str, list[dict[str, Any]]] = {"raw": [], "ideal": [], "plain": [], "masked": []}
    for _ in range(reps):  # interleaved: a change of load on a shared machine hits all alike
        runs["raw"].append(raw(ws, n))
        runs["ideal"].append(ideal(ws, n))
        for variant in ("plain", "masked"):
            runs[variant].append(product(ws, f"{variant}-{n}"))
    raw_run, ideal_run = best(runs["raw"]), best(runs["ideal"])
    ws.cache[f"ideal:{n}"] = ideal_run
    mb = raw_run["wire_bytes"] / 1e6
    label = f"delivery {n:,} rows"
    for variant in ("plain", "masked"):
        got = best(runs[variant])
        ws.cache[f"delivery:{variant}:{n}"] = got
        name = f"{label}, {'3 plain fields' if variant == 'plain' else '1 masked + 1 hashed'}"
        report.add(Figure(name, "rows/s", rate(got), "rows/s", "ideal pipeline",
                          rate(ideal_run), at_least_ratio(1.0) if variant == "plain" else None))
        report.add(Figure(name, "rows/s", rate(got), "rows/s", "raw gRPC stream",
                          rate(raw_run)))
        report.add(Figure(name, "MB/s (vault)", got["vault_bytes"] / 1e6 / got["seconds"],
                          "MB/s", "raw gRPC stream", mb / raw_run["seconds"]))
        for side, key in (("provider", "provider_peak_kb"), ("consumer", "peak_rss_kb")):
            peak = max(r[key] for r in runs[variant]) / 1024
            base = max(r[key] for r in runs["ideal"]) / 1024
            report.add(Figure(name, f"peak RSS {side}", peak, "MB", "ideal pipeline", base,
                              at_most(RSS_LIMIT_MB, "MB"), higher_is_better=False))
    report.note(f"delivery: {n:,} rows of 6 fields (~200 B/row as CSV); envelopes and raw gRPC "
                f"messages of {DEFAULT_ENVELOPE_ROWS} rows, ideal pipeline batches of 1000 (as "
                "the reference); "
                f"{reps} run(s) each, interleaved, best rate kept, highest peak RSS kept. "
                "Plain = id, value, payload; masked = id, sensor (hash), payload (mask). MB/s "
                "counts the sealed batches in the vault (product) and the projected JSON "
                "batches on the wire (raw gRPC).")
