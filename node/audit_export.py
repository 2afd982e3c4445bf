"""Export a node's audit log as one JSON Lines file that an auditor can verify offline.

The export holds everything an auditor needs besides the cards: the node's card, its signed
checkpoints, its checkpoints as counterparties cosigned them, the counterparties'
checkpoints this node cosigned (with the consistency proofs it accepted them with), and
every entry byte for byte as stored, so the auditor recomputes each leaf hash from the
file itself. The format is docs/audit-export.md.

Exporting is itself an event (``audit.exported``), and the export ends with a checkpoint
that covers that entry: the last entry of an export is attested, and its time tells the
auditor until when the log was observed. The file is written to a temporary name and
renamed, so a reader never sees half an export.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.audit import now_ms
from node.errors import BadInput
from node.home import DB_FILE, Home
from node.store.db import connect

FORMAT = "trustspace-audit-export"
VERSION = 1
ENTRY_PREFIX = b'{"body":'
"""Every entry line starts so (canonical JSON sorts ``body`` first); no record line does."""


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    node_id: str
    entries: int
    checkpoints: int
    cosigned: int
    peer_checkpoints: int


def record_line(record: dict[str, Any]) -> bytes:
    """One non-entry line: compact JSON with sorted keys, then a newline."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8") + b"\n"


def export_log(home: Home, out: Path) -> ExportSummary:
    """Write HOME's audit log to ``out`` (replaced atomically); returns what was written."""
    if out.is_dir():
        raise BadInput(f"{out} is a folder; give the path of the export file to write")
    if not out.parent.is_dir():
        raise BadInput(f"the folder {out.parent} does not exist")
    home.record("audit.exported", {"format": VERSION})
    home.checkpointer.checkpoint_now()
    card = json.loads(home.signed_card().to_json())
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    conn = connect(home.path / DB_FILE)  # a connection of its own: one read snapshot
    try:
        conn.execute("BEGIN")
        with open(tmp, "wb") as f:
            summary = _write(conn, f, home, card, out)
            f.flush()
            os.fsync(f.fileno())
        conn.execute("COMMIT")
        os.replace(tmp, out)
    finally:
        conn.close()
        if tmp.exists():
            tmp.unlink()
    return summary


def _write(conn: sqlite3.Connection, f: Any, home: Home, card: dict[str, Any],
           out: Path) -> ExportSummary:
    # The export ends at the newest checkpoint: entries a running node appends meanwhile
    # belong to the next export.
    row = conn.execute("SELECT max(size) FROM audit_checkpoints").fetchone()
    size = int(row[0] or 0)
    f.write(record_line({"type": "header", "format": FORMAT, "version": VERSION,
                         "node": home.node_id, "origin": f"trustspace/{home.node_id}",
                         "exported_at": now_ms(), "card": card}))
    checkpoints = 0
    for (note,) in conn.execute("SELECT note FROM audit_checkpoints ORDER BY size"):
        f.write(record_line({"type": "checkpoint", "note": note}))
        checkpoints += 1
    cosigned = 0
    for peer, note in conn.execute("SELECT peer_id, note FROM audit_cosignatures WHERE note IS "
                                   "NOT NULL ORDER BY peer_id, size"):
        f.write(record_line({"type": "cosigned", "peer": peer, "note": note}))
        cosigned += 1
    held = 0
    for peer, note, proof_from, proof in conn.execute(
            "SELECT peer_id, note, proof_from, proof FROM audit_peer_checkpoints "
            "ORDER BY peer_id, size"):
        f.write(record_line({"type": "peer_checkpoint", "peer": peer, "note": note,
                             "proof_from": proof_from,
                             "proof": [h.hex() for h in _hashes(bytes(proof))]}))
        held += 1
    entries = 0
    for data in _entries(conn, size):
        f.write(data)
        f.write(b"\n")
        entries += 1
    f.write(record_line({"type": "end", "entries": entries}))
    return ExportSummary(out, home.node_id, entries, checkpoints, cosigned, held)


def _entries(conn: sqlite3.Connection, size: int) -> Iterator[bytes]:
    cursor = conn.execute("SELECT entry FROM audit_entries WHERE seq < ? ORDER BY seq", (size,))
    while rows := cursor.fetchmany(4096):
        for (data,) in rows:
            yield bytes(data)


def _hashes(data: bytes) -> list[bytes]:
    return [data[i:i + 32] for i in range(0, len(data), 32)]
