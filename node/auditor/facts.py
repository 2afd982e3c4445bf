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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from node.auditor.findings import Finding
from node.canonical import canonical_json
from node.errors import MalformedMessage

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
ENVELOPE_BODY = re.compile(_BODY)
"""An envelope body in canonical form, its seven fields as groups in key order."""
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


@dataclass(frozen=True)
class Segment:
    """The envelopes of one delivery in one chunk of a log, consistent among themselves: one
    agreement, each envelope's seq one more than the one before and naming its digest.

    ``digests`` are theirs end to end (32 bytes each), ``last_digest`` the last one in hex
    as the entries write it; ``places`` are their places in the chunk; ``fields`` maps each
    distinct list of fields to the place of the first envelope carrying it.
    """

    kind: bytes
    agreement: bytes
    delivery: bytes
    first_seq: int
    first_prev: bytes
    digests: bytes
    last_digest: bytes
    rows: array[int]
    places: array[int]
    fields: dict[bytes, int]
    first_time: int
    last_time: int


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
            m = ENVELOPE_BODY.fullmatch(line, start, end)
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

    def fits(self, segments: Iterable[Segment]) -> bool:
        """Whether each segment goes on from where its delivery's run is, so that taking it
        whole (:meth:`take_chunk`) is what :meth:`envelope` would do with each envelope."""
        for segment in segments:
            run = (self.sent if segment.kind == SENT else self.received).get(segment.delivery)
            if run is None:
                if segment.first_seq != 0 or segment.first_prev:
                    return False
            elif segment.agreement != run.agreement_bytes or segment.first_seq != len(run) \
                    or segment.first_prev != run.last_digest:
                return False
        return True

    def take_chunk(self, base: int, segments: Iterable[Segment],
                   events: Iterable[tuple[int, int, bytes, dict[str, Any]]],
                   kinds: Mapping[bytes, int], first_time: int, last_time: int) -> None:
        """Take a regular chunk of entries from ``base`` on, after :meth:`fits` said yes.

        ``segments`` are its envelopes by delivery, in the order each delivery first
        appears; ``events`` the entries kept whole (place in the chunk, time, kind, body);
        ``kinds`` counts the other entries by kind. Each entry sets the times, so the
        chunk's first and last do.
        """
        if self.first_time is None:
            self.first_time = first_time
        for segment in segments:
            runs = self.sent if segment.kind == SENT else self.received
            run = runs.get(segment.delivery)
            if run is None:
                run = runs[segment.delivery] = EnvelopeRun(
                    segment.kind.decode(), _text(segment.agreement), _text(segment.delivery))
                run.first_time = segment.first_time
            run.digests += segment.digests
            run.rows.extend(segment.rows)
            run.positions.extend(map(base.__add__, segment.places))
            run.last_digest = segment.last_digest
            run.last_time = segment.last_time
            for fields, place in segment.fields.items():
                run.fields.setdefault(fields, base + place)
            self._kinds[segment.kind] += len(segment.rows)
        for place, time, kind, body in events:
            self._kinds[kind] += 1
            self.events.append(Event(self.index, base + place, time, _text(kind), body))
        self._kinds.update(kinds)
        self.last_time = last_time

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

    Parsed as ``json.loads`` would (without building a decoder for every entry, a fifth of
    a verify once) and encoded again by the node's one canonical encoding.
    """
    try:
        value = _loads(data)
        again = canonical_json(value)
    except (ValueError, UnicodeDecodeError, RecursionError, MalformedMessage):
        raise NotCanonical("its body is not JSON without floats") from None
    if not isinstance(value, dict):
        raise NotCanonical("its body is not a JSON object")
    if again != data:
        raise NotCanonical("its body is not in canonical JSON form (key order, spacing, "
                           "escapes or a repeated key)")
    return value


def is_canonical_body(data: bytes) -> bool:
    """Whether :func:`parse_body` takes ``data``, found at less cost when the value is not
    needed: a body that is not UTF-8 (surrogates included) never re-encodes to its bytes,
    and a flat object without escapes is checked without encoding it again."""
    try:
        text = data.decode("utf-8")
        value, end = _SCAN(text, 0)
        if end != len(text) or type(value) is not dict:
            return False
        if "\\" not in text:
            # No escapes: every quote opens or closes a string, and each string is spelled as
            # the encoder spells it. So the text is canonical if, outside its strings, there
            # is no other object, no white space (the only characters there that are not
            # printable, with the space) and no -0, and the keys (one colon after each, none
            # elsewhere) are sorted with none repeated.
            outside = "".join(text.split('"')[::2])
            if outside.count("{") == 1:
                keys = list(value)
                return keys == sorted(keys) and outside.count(":") == len(keys) \
                    and outside.isprintable() and " " not in outside and "-0" not in outside
        return canonical_json(value) == data
    except (ValueError, StopIteration, RecursionError, MalformedMessage):
        return False


def _no_float(text: str) -> Any:
    raise ValueError(f"float {text}")


_DECODER = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float)
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _loads(data: bytes) -> Any:
    """``json.loads(data)`` with the one decoder, and a short way for a canonical body.

    A body starting ``{"`` is UTF-8 for ``json.detect_encoding`` (no byte order mark, no
    zero byte) and has no white space to skip, so the scanner starts at once (as
    ``raw_decode`` would); if it does not end where the object does, the full ``decode``
    decides, as ``json.loads`` would.
    """
    if data[:2] == b'{"':
        text = data.decode("utf-8", "surrogatepass")
        try:
            value, end = _SCAN(text, 0)
        except StopIteration:  # what raw_decode turns into "Expecting value"
            raise ValueError("expecting a value") from None
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
