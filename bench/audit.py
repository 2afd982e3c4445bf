"""Audit: appending to the hash-chained log with checkpoints on, and verifying an export.

Append (in process, the product's ``Home.record``): one entry per transaction, as a node
records each event, with the checkpointer signing a checkpoint every 1000 entries or second.
The log is then grown to the verify size with many appends per transaction (as a delivery
appends), exported with ``node.audit_export.export_log`` and verified by the installed
``trustspace audit verify`` with the node's card: the auditor's whole path, from reading the
file to the last finding.

Baselines in the same run, over the same entry bytes: a raw SHA-256 hash chain in memory,
a raw SQLite insert of each entry and its hash with one commit per entry, and for verify a
raw SHA-256 chain over the export's entry lines read from the file.
"""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.report import Figure, Report, at_least
from bench.workspace import PROVIDER_DOMAIN, REPO, TRUSTSPACE, Workspace

ENTRY_PREFIX = b'{"body":'
GROW_BATCH = 10_000


def body(i: int) -> dict[str, Any]:
    """An entry body the size of a delivery's (ids, counts and digests only)."""
    digest = hashlib.sha256(i.to_bytes(8, "big")).hexdigest()
    return {"agreement": "agr_bench0000000000000000000001",
            "delivery": f"dlv_bench{i // 1000:021d}", "seq": i, "rows": 1000,
            "fields": ["id", "value", "payload"], "digest": digest, "prev": digest[::-1]}


def append_each(home: Any, start: int, count: int) -> float:
    started = time.perf_counter()
    for i in range(start, start + count):
        home.record("bench.event", body(i))
    return time.perf_counter() - started


def append_batched(home: Any, start: int, count: int) -> float:
    started = time.perf_counter()
    for first in range(start, start + count, GROW_BATCH):
        with home.change() as change:
            for i in range(first, min(start + count, first + GROW_BATCH)):
                change.audit.append("bench.event", body(i))
    return time.perf_counter() - started


def raw_chain(entries: list[bytes]) -> float:
    """SHA-256 leaf hashes chained through the entries: the least a hash chain costs."""
    started = time.perf_counter()
    prev = b"\x00" * 32
    for entry in entries:
        prev = hashlib.sha256(b"\x00" + prev + entry).digest()
    return time.perf_counter() - started


def raw_insert_each(path: Path, entries: list[bytes]) -> float:
    """Each entry and its hash inserted and committed on its own: the storage floor."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE log (seq INTEGER PRIMARY KEY, entry BLOB, hash BLOB)")
    started = time.perf_counter()
    prev = b"\x00" * 32
    for seq, entry in enumerate(entries):
        prev = hashlib.sha256(b"\x00" + prev + entry).digest()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO log VALUES (?, ?, ?)", (seq, entry, prev))
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


def raw_verify(export: Path) -> tuple[float, int]:
    """Read the export's entry lines, recompute each leaf hash and check the next links it."""
    started = time.perf_counter()
    count = 0
    expected = b'"prev":"' + b"0" * 64 + b'"'
    with export.open("rb") as f:
        for line in f:
            if not line.startswith(ENTRY_PREFIX):
                continue
            if expected not in line:
                raise RuntimeError(f"entry {count} of the export does not chain")
            expected = b'"prev":"' + hashlib.sha256(b"\x00" + line[:-1]).hexdigest().encode() \
                + b'"'
            count += 1
    return time.perf_counter() - started, count


def product_verify(export: Path, card: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([str(TRUSTSPACE), "audit", "verify", str(export), "--card", str(card),
                           "--json"], capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 4):
        raise RuntimeError(f"trustspace audit verify failed ({done.returncode}): "
                           f"{done.stderr.strip()[-2000:]}")
    return seconds


def run(ws: Workspace, report: Report) -> None:
    from node.audit_export import export_log

    appends, total = ws.sizes.audit_appends, ws.sizes.audit_entries
    ref = ws.node("auditlog", PROVIDER_DOMAIN)
    home = ref.open()
    try:
        first = home.audit.size()
        each_s = append_each(home, first, appends)
        entries = [bytes(r[0]) for r in home.conn.execute(
            "SELECT entry FROM audit_entries WHERE seq >= ? ORDER BY seq", (first,))]
        chain_s = raw_chain(entries)
        floor_s = raw_insert_each(ws.path("baseline", "audit-raw.db"), entries)
        batch = min(appends, total - home.audit.size())
        batched_s = append_batched(home, home.audit.size(), batch)
        append_batched(home, home.audit.size(), total - home.audit.size())
        card = ws.path("audit", "card.json")
        card.write_text(home.signed_card().to_json(), "utf-8")
        export = ws.path("audit", "export.jsonl")
        clock = time.perf_counter()
        summary = export_log(home, export)
        export_s = time.perf_counter() - clock
    finally:
        home.close()
    verify_s = product_verify(export, card)
    raw_s, raw_count = raw_verify(export)
    label = "audit append"
    report.add(Figure(f"{label}, 1 entry per transaction", "entries/s", appends / each_s, "/s",
                      "raw SQLite commit each", appends / floor_s, at_least(20_000, "/s")))
    report.add(Figure(f"{label}, 1 entry per transaction", "entries/s", appends / each_s, "/s",
                      "raw SHA-256 chain", appends / chain_s))
    report.add(Figure(f"{label}, {GROW_BATCH:,} per transaction", "entries/s",
                      batch / batched_s, "/s", "raw SHA-256 chain", appends / chain_s))
    report.add(Figure(f"audit verify, {summary.entries:,}-entry export", "entries/s",
                      summary.entries / verify_s, "/s", "raw SHA-256 chain (file)",
                      raw_count / raw_s, at_least(100_000, "/s")))
    report.note(f"audit: {appends:,} appends timed one per transaction (checkpoint every "
                f"1000 entries or 1 s); log grown to {summary.entries:,} entries "
                f"({export.stat().st_size / 1e6:.0f} MB export, written in {export_s:.1f} s, "
                f"{summary.checkpoints} checkpoints) and verified by 'trustspace audit verify' "
                "(wall time of the command, startup included).")
    export.unlink()
