"""What the one pass over a log keeps for the per-agreement checks, and the entry bodies' parser.

Most entries of a busy log are ``envelope.sent`` / ``envelope.received``. They are parsed by
one regular expression that accepts exactly their canonical encoding, and kept compactly:
per delivery a byte array of digests and arrays of row counts and entry positions, 48
bytes an envelope. Any other body is parsed as JSON and must re-encode to the very same
bytes (canonical JSON: no duplicate keys, no floats, no other spelling). Events the
agreement checks need are kept whole; the rest are only counted.
"""

from __future__ import annotations

import json
import re
from array import array
from binascii import unhexlify
from collections import Counter
from dataclasses import dataclass
from typing import Any

from node.auditor.findings import Finding

SENT, RECEIVED = b"envelope.sent", b"envelope.received"
FACT_KINDS = frozenset({
    "negotiation.decided", "agreement.proposed", "agreement.signed", "agreement.revoked",
    "revocation.received", "delivery.started", "delivery.refused", "delivery.completed",
    "delivery.aborted", "data.read", "data.read_refused", "data.destroyed",
    "receipt.acknowledged", "receipt.received", "checkpoint.cosigned", "checkpoint.refused",
})
"""Kinds whose bodies are kept for steps 2-4 (docs/audit-events.md)."""

_STR = rb'"([^"\\\x00-\x1f]*)"'
_BODY = (rb'\{"agreement":' + _STR + rb',"delivery":' + _STR + rb',"digest":"([0-9a-f]{64})",'
         rb'"fields":\[((?:"[^"\\\x00-\x1f]*"(?:,"[^"\\\x00-\x1f]*")*)?)\],'
         rb'"prev":"((?:[0-9a-f]{64})?)","rows":(0|[1-9][0-9]{0,17}),"seq":(0|[1-9][0-9]{0,17})\}')
_ENVELOPE = re.compile(_BODY)
ENVELOPE_LINE = re.compile(
    rb'\{"body":' + _BODY + rb',"kind":"(envelope\.sent|envelope\.received)",'
    rb'"node":"([^"\\\x00-\x1f]{1,64})","prev":"([0-9a-f]{64})","seq":(0|[1-9][0-9]{0,18}),'
    rb'"time":(-?(?:0|[1-9][0-9]{0,18})),"v":1\}\n')
"""A whole envelope entry line in canonical form: the body's seven fields, then the entry's."""
_ENVELOPE_KEYS = {"agreement", "delivery", "seq", "rows", "fields", "digest", "prev"}
_HEX = frozenset("0123456789abcdef")
MISSING = -1
"""Row count of an envelope a log skipped (kept so that an envelope's index is its seq)."""


class NotCanonical(ValueError):
    """An entry body that is not canonical JSON of an object."""


@dataclass(frozen=True, slots=True)
class Event:
    """One entry the agreement checks need: its position in its log, time, kind and body."""

    log: int
    pos: int
    time: int
    kind: str
    body: dict[str, Any]


class EnvelopeRun:
    """The envelopes one log recorded for one delivery, indexed by their seq."""

    __slots__ = ("kind", "agreement", "agreement_bytes", "delivery", "digests", "rows",
                 "positions", "last_digest", "fields", "first_time", "last_time")

    def __init__(self, kind: str, agreement: str, delivery: str) -> None:
        self.kind = kind
        self.agreement = agreement
        self.agreement_bytes = agreement.encode()
        self.delivery = delivery
        self.digests = bytearray()
        self.rows = array("q")
        self.positions = array("q")
        self.last_digest = b""
        self.fields: dict[bytes, int] = {}  # each distinct field list -> first entry with it
        self.first_time = self.last_time = 0

    def __len__(self) -> int:
        return len(self.rows)

    def digest(self, seq: int) -> str:
        return self.digests[seq * 32:(seq + 1) * 32].hex()

    def total_rows(self) -> int:
        return sum(self.rows) - MISSING * self.rows.count(MISSING)

    def field_lists(self) -> list[tuple[list[str], int]]:
        """Each distinct list of fields with the first entry carrying it."""
        return [(json.loads(b"[" + raw + b"]"), pos) for raw, pos in self.fields.items()]


class LogFacts:
    """Everything one log tells the later steps, gathered entry by entry."""

    def __init__(self, index: int, label: str) -> None:
        self.index = index
        self.label = label
        self.events: list[Event] = []
        self.sent: dict[bytes, EnvelopeRun] = {}
        self.received: dict[bytes, EnvelopeRun] = {}
        self._kinds: Counter[bytes] = Counter()
        self.findings: list[Finding] = []
        self.first_time: int | None = None
        self.last_time = 0

    def runs(self) -> list[EnvelopeRun]:
        return [*self.sent.values(), *self.received.values()]

    def add(self, pos: int, time: int, kind: bytes, line: bytes, start: int, end: int) -> None:
        """Take the entry at ``pos`` whose body is ``line[start:end]``; NotCanonical if bad."""
        if kind == SENT or kind == RECEIVED:
            m = _ENVELOPE.fullmatch(line, start, end)
            if m is not None:
                self.envelope(pos, time, kind, *m.groups())
            else:
                self._slow_envelope(pos, time, kind, parse_body(line[start:end]))
            return
        if self.first_time is None:
            self.first_time = time
        self.last_time = time
        self._kinds[kind] += 1
        body = parse_body(line[start:end])
        name = _text(kind)
        if name in FACT_KINDS:
            self.events.append(Event(self.index, pos, time, name, body))

    @property
    def kinds(self) -> Counter[str]:
        """How many entries of each kind the log holds."""
        return Counter({k.decode("utf-8", "replace"): n for k, n in self._kinds.items()})

    def envelope(self, pos: int, time: int, kind: bytes, agreement: bytes, delivery: bytes,
                 digest: bytes, fields: bytes, prev: bytes, rows: bytes, seq: bytes) -> None:
        """Take one envelope entry, given as the raw fields of its canonical body."""
        if self.first_time is None:
            self.first_time = time
        self.last_time = time
        self._kinds[kind] += 1
        runs = self.sent if kind == SENT else self.received
        run = runs.get(delivery)
        if run is None:
            run = runs[delivery] = EnvelopeRun(kind.decode(), _text(agreement), _text(delivery))
            run.first_time = time
        elif agreement != run.agreement_bytes:
            self._chain(pos, run, f"envelope of delivery {run.delivery} names agreement "
                                  f"{_text(agreement)}; the delivery's first envelope names "
                                  f"{run.agreement}")
            return
        number, expected = int(seq), len(run.rows)
        if number != expected:
            if number < expected:
                self._chain(pos, run, f"envelope {number} of delivery {run.delivery} is recorded "
                                      f"again (or out of order) after envelope {expected - 1}")
                return
            self._chain(pos, run, f"delivery {run.delivery} skips from envelope {expected - 1} "
                                  f"to envelope {number}: envelopes {expected}..{number - 1} "
                                  "are not in this log")
            for _ in range(number - expected):  # placeholders: an envelope's index is its seq
                run.digests += bytes(32)
                run.rows.append(MISSING)
                run.positions.append(MISSING)
        elif prev != run.last_digest:
            self._chain(pos, run, f"envelope {number} of delivery {run.delivery} names "
                                  f"{_shown(prev)} as the previous envelope's digest; envelope "
                                  f"{number - 1} has digest {_shown(run.last_digest)}")
        run.digests += unhexlify(digest)
        run.rows.append(int(rows))
        run.positions.append(pos)
        run.last_digest = digest
        run.last_time = time
        if fields not in run.fields:
            _text(b"[" + fields + b"]")
            run.fields[fields] = pos

    def _slow_envelope(self, pos: int, time: int, kind: bytes, body: dict[str, Any]) -> None:
        """An envelope body the fast pattern did not take (e.g. unusual field names)."""
        ok = set(body) == _ENVELOPE_KEYS and all(
            isinstance(body[k], str) for k in ("agreement", "delivery", "digest", "prev")) \
            and all(_is_count(body[k]) for k in ("seq", "rows")) \
            and isinstance(body["fields"], list) \
            and all(isinstance(f, str) for f in body["fields"]) \
            and _is_digest(body["digest"]) and (body["prev"] == "" or _is_digest(body["prev"]))
        if not ok:
            self.first_time = time if self.first_time is None else self.first_time
            self.last_time = time
            self._kinds[kind] += 1
            agreement = body.get("agreement")
            self.findings.append(Finding(
                self.label, pos, "event.malformed",
                f"{kind.decode()} must have {sorted(_ENVELOPE_KEYS)} with text ids, 64-digit hex "
                "digests, whole-number seq and rows and a list of field names",
                agreement if isinstance(agreement, str) else None))
            return
        fields = json.dumps(body["fields"], ensure_ascii=False, separators=(",", ":"))
        self.envelope(pos, time, kind, body["agreement"].encode(), body["delivery"].encode(),
                       body["digest"].encode(), fields[1:-1].encode(), body["prev"].encode(),
                       str(body["rows"]).encode(), str(body["seq"]).encode())

    def _chain(self, pos: int, run: EnvelopeRun, message: str) -> None:
        self.findings.append(Finding(self.label, pos, "envelope.chain", message, run.agreement))


def parse_body(data: bytes) -> dict[str, Any]:
    """An entry body: a JSON object whose canonical encoding is exactly ``data``.

    What ``json.loads`` and ``json.dumps`` would do with these arguments, without building
    a decoder and an encoder for every entry (a fifth of a verify, once).
    """
    try:
        value = _loads(data)
        again = _ENCODER.encode(value).encode("utf-8")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise NotCanonical("its body is not JSON without floats") from None
    if not isinstance(value, dict):
        raise NotCanonical("its body is not a JSON object")
    if again != data:
        raise NotCanonical("its body is not in canonical JSON form (key order, spacing, "
                           "escapes or a repeated key)")
    return value


def _no_float(text: str) -> Any:
    raise ValueError(f"float {text}")


_DECODER = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)


def _loads(data: bytes) -> Any:
    """``json.loads(data)`` with the one decoder, and a short way for a canonical body.

    A body starting ``{"`` is UTF-8 for ``json.detect_encoding`` (no byte order mark, no
    zero byte) and has no white space to skip; if it does not end where the object does,
    the full ``decode`` decides, as ``json.loads`` would.
    """
    if data[:2] == b'{"':
        text = data.decode("utf-8", "surrogatepass")
        value, end = _DECODER.raw_decode(text)
        if end == len(text):
            return value
    else:
        text = data.decode(json.detect_encoding(data), "surrogatepass")
    return _DECODER.decode(text)


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotCanonical("it is not valid UTF-8") from None


def _shown(digest: bytes) -> str:
    return digest.decode() if digest else "(none)"


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_digest(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX
