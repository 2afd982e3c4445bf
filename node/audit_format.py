"""The audit entry and its canonical encoding, defined once.

An entry is canonical JSON of ``{v, seq, time, node, kind, body, prev}``: ``seq`` counts
from 0 without gaps, ``time`` is unix milliseconds, ``prev`` is the hex leaf hash of the
previous entry (64 zeros for the first), and ``body`` holds only ids, counts, digests and
reasons — never keys, tokens or row contents. Its leaf hash is the RFC 9162 leaf hash of
those bytes, so one hash serves both the chain and the Merkle tree.
See docs/adr/0001-canonical-encoding.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.canonical import canonical_json, parse_canonical
from node.errors import MalformedMessage
from node.merkle import leaf_hash

__all__ = ["AuditEntry", "GENESIS_PREV", "leaf_hash"]

FORMAT_VERSION = 1
GENESIS_PREV = "0" * 64
_KEYS = {"v", "seq", "time", "node", "kind", "body", "prev"}


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    time: int
    node: str
    kind: str
    body: dict[str, Any]
    prev: str

    def to_dict(self) -> dict[str, Any]:
        return {"v": FORMAT_VERSION, "seq": self.seq, "time": self.time, "node": self.node,
                "kind": self.kind, "body": self.body, "prev": self.prev}

    def encode(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def decode(cls, data: bytes) -> AuditEntry:
        raw = parse_canonical(data, what="audit entry")
        if set(raw) != _KEYS or type(raw["v"]) is not int \
                or raw["v"] != FORMAT_VERSION:  # true == 1 in Python, not in the encoding
            raise MalformedMessage("an audit entry must have exactly the fields "
                                   f"{sorted(_KEYS)} and version {FORMAT_VERSION}")
        seq, time_ms, body = raw["seq"], raw["time"], raw["body"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 \
                or not isinstance(time_ms, int) or isinstance(time_ms, bool) \
                or not isinstance(body, dict) or not all(
                    isinstance(raw[k], str) for k in ("node", "kind", "prev")):
            raise MalformedMessage("an audit entry has a field of the wrong type")
        return cls(seq, time_ms, raw["node"], raw["kind"], body, raw["prev"])
