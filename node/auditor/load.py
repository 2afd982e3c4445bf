"""Reading exports and cards strictly, without holding an export in memory.

An export (docs/audit-export.md) is read in two parts. :func:`read_head` reads the header
and the checkpoint records that precede the entries; :func:`entry_spans` then cuts the
entry lines into spans of a few megabytes of whole lines, each read at once with
:func:`read_span`. Anything that departs from the format becomes an ``export.malformed``
finding naming the line, so one bad line never hides the rest of the log; only a file
that is not an export at all (no readable header naming a node) is refused as bad input.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.audit_export import ENTRY_PREFIX, FORMAT, VERSION
from node.auditor.findings import Finding
from node.checkpoints import origin_of
from node.errors import MalformedFile, TrustspaceError
from node.identity import NodeCard, SignedCard

_HEADER_KEYS = {"type", "format", "version", "node", "origin", "exported_at", "card"}
_RECORD_KEYS = {
    "checkpoint": {"type", "note"},
    "cosigned": {"type", "peer", "note"},
    "peer_checkpoint": {"type", "peer", "note", "proof_from", "proof"},
}
_END_KEYS = {"type", "entries"}
END_PREFIX = b'{"entries":'
"""The end record sorts ``entries`` before ``type``; no entry line starts so."""
_PIECE = 1 << 16


@dataclass(frozen=True)
class NoteRecord:
    """A signed note found in an export: the node's own checkpoint, or one it holds.

    ``kind`` is ``checkpoint`` (the node's own), ``cosigned`` (the node's own, with the
    cosignature of ``peer``) or ``peer_checkpoint`` (``peer``'s checkpoint, cosigned by
    the node, accepted with a consistency proof from size ``proof_from``).
    """

    kind: str
    note: str
    line: int
    peer: str | None = None
    proof_from: int = 0
    proof: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class ExportHead:
    """Everything of an export but its entries, and where the entries start."""

    path: Path
    label: str
    node_id: str
    card: NodeCard | None
    exported_at: int
    records: tuple[NoteRecord, ...]
    entries_offset: int
    entries_line: int
    findings: tuple[Finding, ...]


def load_cards(paths: Sequence[Path]) -> dict[str, NodeCard]:
    """The trusted cards by node id; each file must be a card signed by its own key."""
    cards: dict[str, NodeCard] = {}
    for path in paths:
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            raise MalformedFile(f"cannot read the card file {path}") from None
        try:
            card = SignedCard.from_json(text).card
        except TrustspaceError as e:
            raise MalformedFile(f"{path} is not a valid node card: {e.message}") from None
        known = cards.get(card.node_id)
        if known is None or card.issued_at > known.issued_at:
            cards[card.node_id] = card
    return cards


def read_head(path: Path, label: str) -> ExportHead:
    """The header and the records before the first entry line of the export at ``path``."""
    try:
        f = open(path, "rb")  # noqa: SIM115 — closed below; the entries are streamed later
    except OSError as e:
        raise MalformedFile(f"cannot read the export {path}: {e.strerror}") from None
    with f:
        first = f.readline()
        header = _header(first, path)
        findings: list[Finding] = []
        card = _card(header, label, findings)
        records: list[NoteRecord] = []
        offset, number = len(first), 1
        while True:
            line = f.readline()
            if not line or line.startswith(ENTRY_PREFIX) or line.startswith(END_PREFIX):
                break
            number += 1
            offset += len(line)
            record = _record(line, number, label, findings)
            if record is not None:
                records.append(record)
    return ExportHead(path, label, str(header["node"]), card, _int(header["exported_at"]),
                      tuple(records), offset, number + 1, tuple(findings))


def entry_spans(export: int, offset: int, size: int) -> Iterator[tuple[int, int]]:
    """The lines from ``offset`` on in the open file ``export`` (a descriptor), as byte spans
    ``[start, stop)`` of whole lines: each span ends at the first line end at or after
    ``size - 1`` bytes from its start (with ``size`` 1, each span is one line), the last one
    at the end of the file."""
    end = os.fstat(export).st_size
    start = offset
    while start < end:
        stop = _line_end(export, start + max(1, size) - 1, end)
        yield start, stop
        start = stop


def read_span(export: int, start: int, stop: int) -> tuple[list[bytes], bool]:
    """The lines in bytes ``[start, stop)`` of the open file ``export`` (a descriptor, read
    without moving its offset, so processes that share it can read it at once) without their
    newlines, and whether the last one ended with a newline (only a file's last line can
    lack it)."""
    lines = _read(export, start, stop - start).split(b"\n")
    last = lines.pop()
    if last:
        lines.append(last)
        return lines, False
    return lines, True


def parse_end(line: bytes) -> int | None:
    """The entry count of an end record, or None if ``line`` is not one."""
    raw = _json(line)
    if not isinstance(raw, dict) or set(raw) != _END_KEYS or raw["type"] != "end" \
            or not _is_count(raw["entries"]):
        return None
    return int(raw["entries"])


# --- helpers ---------------------------------------------------------------------------------


def _header(line: bytes, path: Path) -> dict[str, Any]:
    raw = _json(line)
    if not isinstance(raw, dict) or raw.get("type") != "header" or raw.get("format") != FORMAT:
        raise MalformedFile(f"{path} is not a trustspace audit export: its first line is not "
                            f"a {FORMAT} header")
    if raw.get("version") != VERSION or set(raw) != _HEADER_KEYS:
        raise MalformedFile(f"{path} is an audit export of another version or layout; "
                            f"expected version {VERSION} with the fields {sorted(_HEADER_KEYS)}")
    node = raw["node"]
    if not isinstance(node, str) or raw["origin"] != origin_of(node) \
            or not _is_count(raw["exported_at"]):
        raise MalformedFile(f"{path} has a header whose node, origin or export time is "
                            "malformed")
    return raw


def _card(header: dict[str, Any], label: str, findings: list[Finding]) -> NodeCard | None:
    """The card the export carries, if it verifies and is the node's; else a finding."""
    try:
        card = SignedCard.from_json(json.dumps(header["card"])).card
    except TrustspaceError as e:
        findings.append(Finding(label, None, "export.malformed",
                                f"line 1: the node card in the header is not valid: {e.message}"))
        return None
    if card.node_id != header["node"]:
        findings.append(Finding(label, None, "export.malformed",
                                f"line 1: the header's card is of node {card.node_id}, not of "
                                f"the exported node {header['node']}"))
        return None
    return card


def _record(line: bytes, number: int, label: str, findings: list[Finding]) -> NoteRecord | None:
    raw = _json(line)
    kind = raw.get("type") if isinstance(raw, dict) else None
    keys = _RECORD_KEYS.get(kind) if isinstance(kind, str) else None
    problem = None
    if keys is None or not isinstance(raw, dict):
        problem = "is not a checkpoint, cosigned or peer_checkpoint record"
    elif set(raw) != keys:
        problem = f"must have exactly the fields {sorted(keys)}"
    elif not isinstance(raw["note"], str) or ("peer" in raw and not isinstance(raw["peer"], str)):
        problem = "has a note or peer that is not text"
    elif kind == "peer_checkpoint" and (not _is_count(raw["proof_from"])
                                        or not _is_proof(raw["proof"])):
        problem = "must give proof_from as a count and proof as a list of 64-digit hex hashes"
    if problem is not None or not isinstance(raw, dict):
        findings.append(Finding(label, None, "export.malformed", f"line {number} {problem}"))
        return None
    proof = tuple(bytes.fromhex(h) for h in raw.get("proof", ()))
    return NoteRecord(str(kind), raw["note"], number, raw.get("peer"),
                      int(raw.get("proof_from", 0)), proof)


def _line_end(export: int, at: int, end: int) -> int:
    """The offset just after the first newline at or after ``at`` (``end`` if none)."""
    while at < end:
        piece = _read(export, at, _PIECE)
        if not piece:
            break
        newline = piece.find(b"\n")
        if newline >= 0:
            return at + newline + 1
        at += len(piece)
    return end


def _read(export: int, offset: int, count: int) -> bytes:
    """Up to ``count`` bytes at ``offset`` (fewer only at the end of the file)."""
    pieces = []
    while count > 0:
        if hasattr(os, "pread"):
            piece = os.pread(export, min(count, 1 << 30), offset)
        else:  # no pread (Windows): no workers share the descriptor there
            os.lseek(export, offset, os.SEEK_SET)
            piece = os.read(export, min(count, 1 << 30))
        if not piece:
            break
        pieces.append(piece)
        offset += len(piece)
        count -= len(piece)
    return b"".join(pieces)


def _json(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: a line nested thousands deep
        return None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _is_proof(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(h, str) and len(h) == 64 and all(c in "0123456789abcdef" for c in h)
        for h in value)
