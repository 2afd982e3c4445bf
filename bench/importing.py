"""Import: ``dataset add`` of an n-row CSV, against raw ``executemany`` of the same rows.

The product reads, checks and types every cell (``node/rowfile.py``), inserts in batches
in one transaction and audits the import (``node/datasets.add_dataset``, called in
process: first on the provider's home, which the delivery benchmarks then use, and on a
throwaway node for further repetitions). Baselines in the same run: ``executemany`` of the
same rows, already typed in memory, into a plain 6-column table (the floor: no file at
all), and the naive import, :mod:`csv` reader straight into ``executemany``, untyped.
Each is repeated ``reps`` times and the best kept.
"""

from __future__ import annotations

import csv
import shutil
import sqlite3
import time
from pathlib import Path

from bench.baselines.ideal_pipeline import build_source
from bench.report import Figure, Report, at_least_ratio
from bench.workspace import PROVIDER_DOMAIN, Workspace, add_dataset_and_offers


def csv_executemany(path: Path, csv_path: Path) -> float:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id, ts, sensor, value, category, payload)")
    started = time.perf_counter()
    with conn, csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        conn.executemany("INSERT INTO t VALUES (?,?,?,?,?,?)", reader)
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def product_again(ws: Workspace, n: int, rep: int) -> float:
    """One more timed import, into a throwaway node."""
    node = ws.node(f"importer{rep}", PROVIDER_DOMAIN)
    try:
        return add_dataset_and_offers(node, f"rows-{n}", ws.csv(n), {})
    finally:
        shutil.rmtree(node.home, ignore_errors=True)


def run(ws: Workspace, report: Report) -> None:
    n, reps = ws.sizes.import_rows, ws.sizes.reps
    csv_path = ws.csv(n)
    ws.dataset(n)  # imports it on the provider, timed, unless an earlier benchmark did
    product = min([ws.cache[f"import-seconds:{n}"],
                   *(product_again(ws, n, rep) for rep in range(1, reps))])
    floor = naive = float("inf")
    for _ in range(reps):
        raw_db, csv_db = ws.path("baseline", "import-raw.db"), ws.path("baseline", "import-csv.db")
        floor = min(floor, build_source(str(raw_db), n))
        naive = min(naive, csv_executemany(csv_db, csv_path))
        remove_db(raw_db)
        remove_db(csv_db)
    label = f"import {n:,}-row CSV"
    report.add(Figure(label, "rows/s", n / product, "rows/s", "raw executemany", n / floor,
                      at_least_ratio(0.7)))
    report.add(Figure(label, "rows/s", n / product, "rows/s", "csv.reader+executemany",
                      n / naive))
    report.note(f"import: {csv_path.stat().st_size / 1e6:.0f} MB CSV of {n:,} rows, best of "
                f"{reps}; "
                "'raw executemany' inserts the same rows already typed in memory (no file), "
                "'csv.reader+executemany' inserts the file's cells untyped.")
