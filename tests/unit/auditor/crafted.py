"""Crafted audit logs: real keys, real signatures, every time chosen by the test.

A :class:`CraftedLog` appends canonical entries (``node/audit_format.py``), signs
checkpoints with the node key, and writes an export in the documented format
(docs/audit-export.md) without going through a node's database, so a test can make a
node misbehave in exactly one way. :func:`exchange` performs the checkpoint exchange the
way ``connector/audit_exchange.py`` does: each side holds the other's checkpoint with its
cosignature, the proof it was accepted with, and a ``checkpoint.cosigned`` entry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from node.audit_export import FORMAT, VERSION
from node.audit_format import GENESIS_PREV, AuditEntry, leaf_hash
from node.checkpoints import origin_of
from node.identity import NodeCard, NodeKeys, SignedCard
from node.merkle import CompactRange, consistency_proof
from node.signednote import Checkpoint, add_signature, sign_note

T0 = 1_700_000_000_000
"""The crafted logs' epoch: times are T0 + seconds * 1000."""


def at(seconds: float) -> int:
    return T0 + int(seconds * 1000)


class CraftedLog:
    def __init__(self, name: str, domain: str, port: int = 7000) -> None:
        self.keys = NodeKeys.generate()
        self.node_id = self.keys.node_id
        self.card = NodeCard(self.node_id, name, domain, f"127.0.0.1:{port}",
                             *_public(self.keys), T0)
        self.signed_card = SignedCard.create(self.keys, self.card)
        self.entries: list[bytes] = []
        self.leaves: list[bytes] = []
        self.times: list[int] = []
        self.notes: dict[int, str] = {}
        self._range = CompactRange()
        self.cosigned: list[tuple[str, str]] = []  # (cosigner, our note with its signature)
        self.held: list[tuple[str, str, int, list[bytes]]] = []  # (peer, note, from, proof)

    @property
    def size(self) -> int:
        return len(self.entries)

    def append(self, kind: str, body: dict[str, Any], time: int) -> int:
        """Append one entry; returns its position."""
        prev = self.leaves[-1].hex() if self.leaves else GENESIS_PREV
        data = AuditEntry(self.size, time, self.node_id, kind, body, prev).encode()
        self.entries.append(data)
        self.leaves.append(leaf_hash(data))
        self._range.append(self.leaves[-1])
        self.times.append(time)
        return self.size - 1

    def checkpoint(self) -> str:
        """The signed checkpoint of the whole log so far (made once per size)."""
        if self.size not in self.notes:
            text = Checkpoint(origin_of(self.node_id), self.size, self._range.root()).to_text()
            self.notes[self.size] = sign_note(text, self.node_id, self.keys.signing)
        return self.notes[self.size]

    def hold(self, other: CraftedLog, note: str, time: int) -> str:
        """Accept ``other``'s checkpoint like the exchange does; returns it cosigned."""
        size = int(note.split("\n")[1])
        mine = [h for h in self.held if h[0] == other.node_id]
        base = max((int(h[1].split("\n")[1]) for h in mine), default=0)
        proof = consistency_proof(base, size, other.leaves[:size]) if 0 < base < size else []
        cosigned = add_signature(note, self.node_id, self.keys.signing)
        self.held.append((other.node_id, cosigned, base, proof))
        root = Checkpoint.parse(note.split("\n\n")[0] + "\n").root
        self.append("checkpoint.cosigned", {"peer": other.node_id, "size": size,
                                            "root": root.hex()}, time)
        return cosigned

    def export_lines(self) -> list[bytes]:
        """The export, as lines without their newlines (the file joins them with one)."""
        self.checkpoint()
        header = {"type": "header", "format": FORMAT, "version": VERSION, "node": self.node_id,
                  "origin": origin_of(self.node_id), "exported_at": self.times[-1],
                  "card": json.loads(self.signed_card.to_json())}
        lines = [_line(header)]
        lines += [_line({"type": "checkpoint", "note": self.notes[s]}) for s in sorted(self.notes)]
        lines += [_line({"type": "cosigned", "peer": p, "note": n}) for p, n in self.cosigned]
        lines += [_line({"type": "peer_checkpoint", "peer": p, "note": n, "proof_from": f,
                         "proof": [h.hex() for h in proof]}) for p, n, f, proof in self.held]
        lines += self.entries
        lines.append(_line({"type": "end", "entries": self.size}))
        return lines

    def write(self, path: Path, lines: list[bytes] | None = None) -> Path:
        path.write_bytes(b"\n".join(self.export_lines() if lines is None else lines) + b"\n")
        return path

    def write_card(self, path: Path) -> Path:
        path.write_text(self.signed_card.to_json(), "utf-8")
        return path


def exchange(caller: CraftedLog, responder: CraftedLog, time: int) -> None:
    """One checkpoint exchange, as connector/audit_exchange.py performs it."""
    note = caller.checkpoint()
    caller.cosigned.append((responder.node_id, responder.hold(caller, note, time)))
    answer = responder.checkpoint()
    responder.cosigned.append((caller.node_id, caller.hold(responder, answer, time)))


def first_entry_line(lines: list[bytes]) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(b'{"body":'))


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def _public(keys: NodeKeys) -> tuple[str, str]:
    from node.canonical import b64
    return b64(keys.verify_key), b64(bytes(keys.box.public_key))
