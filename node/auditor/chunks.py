"""The per-entry work of step 1 that does not depend on other entries, a chunk at a time.

The pass over a log is sequential (the chain, the numbering, the Merkle fold, the facts),
but most of its cost is per entry and independent of every other entry: hashing the line,
taking the fields after the body, proving the body canonical. The entries of an export are
cut into chunks of whole lines (``load.entry_spans``); :func:`scan_chunk` does that work
for one chunk and sums it up as a :class:`Chunk` that the pass takes whole when the chunk
is *regular*: every line an entry in canonical form, numbered one after the other, each
but the first naming the hash of the line before, each delivery's envelopes in order, the
last line possibly the end record. Any other chunk is only marked irregular, and the pass
reads it again entry by entry, so the findings are the same whichever way a chunk went.

:func:`scan_chunks` runs the chunks in worker processes (forked, so they start in
milliseconds) when the export is large and the machine has cores to spare, a bounded number
of chunks at a time so that memory stays bounded, in order; in this process otherwise, or
when workers cannot be started or stop answering.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from array import array
from binascii import unhexlify
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any

from node.audit_export import ENTRY_PREFIX
from node.auditor.facts import (
    ENVELOPE_BODY,
    FACT_KINDS,
    RECEIVED,
    SENT,
    NotCanonical,
    Segment,
    is_canonical_body,
    parse_body,
)
from node.auditor.load import END_PREFIX, parse_end, read_span

if TYPE_CHECKING:
    from concurrent.futures import Future

KIND_KEY = b',"kind":"'
"""Where the fields after an entry's body start (no body holds it outside a string)."""
TAIL = re.compile(
    rb',"kind":"([^"\\\x00-\x1f]{1,64})","node":"([^"\\\x00-\x1f]{1,64})",'
    rb'"prev":"([0-9a-f]{64})","seq":(0|[1-9][0-9]{0,18}),'
    rb'"time":(-?(?:0|[1-9][0-9]{0,18})),"v":1\}')
"""The fields after the body of a canonical entry line (without its newline).

Matched at the last ``,"kind":"`` of the line: kind and node hold no quote, so a match
can start nowhere else, and with ``fullmatch`` it runs to the end of the line.
"""

_FAST_TAIL = re.compile(
    rb',"kind":"([^"]{1,64})","node":"([^"]{1,64})","prev":"(.{64})",'
    rb'"seq":(0|[1-9][0-9]{0,18}),"time":(-?(?:0|[1-9][0-9]{0,18})),"v":1\}')
"""``TAIL`` at half the cost: kind, node and prev are checked once a chunk (``_NAME``, the
node itself, hex digits of all links at once), not character by character on each line."""
_FAST_ENVELOPE = re.compile(rb'\{"body":' + ENVELOPE_BODY.pattern + _FAST_TAIL.pattern)
"""A whole line that is an envelope body in canonical form and the fields after it (once
its kind was seen to be an envelope's)."""
_ENVELOPE_KINDS = (SENT + b'"', RECEIVED + b'"')
_NAME = re.compile(rb'[^"\\\x00-\x1f]{1,64}')
"""A kind or node as ``TAIL`` takes it."""

CHUNK_BYTES = 4 << 20
"""Bytes of entry lines per chunk: about 9,000 entries, 300 kB of leaf hashes."""
POOL_BYTES = 32 << 20
"""Exports with fewer bytes of entries than this are checked in this process."""
MAX_WORKERS = 4
"""The pass itself takes about a microsecond an entry: more workers would wait for it."""

_FACTS = frozenset(kind.encode() for kind in FACT_KINDS)

Event = tuple[int, int, bytes, dict[str, Any]]
"""An entry the later steps keep whole: its place in the chunk, time, kind and body."""


@dataclass(frozen=True)
class Chunk:
    """What the independent per-entry work found in the lines ``[start, stop)`` of an export.

    Only a regular chunk carries more than its span: its ``entries`` entry lines, their leaf
    hashes end to end, the hash its first entry names as previous, its first seq, the times
    of its first and last entry, how many entries of each kind it holds that the later steps
    do not need, its envelopes by delivery, the other entries the later steps need, the
    count of the end record if that is its last line, and how many entries name another
    node than the log's (the first of them at ``first_foreign``, naming ``foreign_node``).
    """

    start: int
    stop: int
    regular: bool
    entries: int = 0
    leaves: bytes = b""
    first_link: bytes = b""
    first_seq: int = 0
    first_time: int = 0
    last_time: int = 0
    kinds: dict[bytes, int] = field(default_factory=dict)
    segments: tuple[Segment, ...] = ()
    events: tuple[Event, ...] = ()
    end: int | None = None
    foreign: int = 0
    first_foreign: int = 0
    foreign_node: bytes = b""


def scan_chunk(export: int, start: int, stop: int, node: bytes) -> Chunk:
    """Read the lines ``[start, stop)`` of the open export ``export`` and sum them up."""
    lines, complete = read_span(export, start, stop)
    return summarize(lines, complete, start, stop, node)


def summarize(lines: list[bytes], complete: bool, start: int, stop: int,
              node: bytes) -> Chunk:
    """The :class:`Chunk` of ``lines`` (without their newlines) of the log of ``node``.

    ``complete`` says the last line ended with a newline; a chunk whose last line did not
    (an export cut off) is irregular.
    """
    irregular = Chunk(start, stop, False)
    end = None
    if lines and lines[-1].startswith(END_PREFIX):
        end = parse_end(lines[-1])
        if end is None:
            return irregular
        lines = lines[:-1]
    if not complete or not lines or not _NAME.fullmatch(node):
        return Chunk(start, stop, True, end=end) if complete and not lines and end is not None \
            else irregular
    sha = hashlib.sha256
    tail = _FAST_TAIL.fullmatch
    envelope_line = _FAST_ENVELOPE.fullmatch
    canonical = is_canonical_body
    leaves: list[bytes] = []
    links: list[bytes] = []
    seqs: list[bytes] = []
    kinds: dict[bytes, int] = {}
    events: list[Event] = []
    deliveries: dict[tuple[bytes, bytes], _Delivery] = {}
    time_text = foreign_node = b""
    foreign = first_foreign = 0
    try:
        for i, line in enumerate(lines):
            leaves.append(sha(b"\x00" + line).digest())
            at = line.rfind(KIND_KEY)
            m = envelope_line(line) if line.startswith(_ENVELOPE_KINDS, at + 9) else None
            if m is not None:  # the bulk of a log: an envelope, body and all in one pattern
                (agreement, delivery, digest, fields, prev, rows, number,
                 kind, named, link, seq, time_text) = m.groups()
                run = deliveries.get((kind, delivery))
                if run is None:
                    run = deliveries[kind, delivery] = _Delivery(agreement, time_text)
                elif agreement != run.agreement:
                    return irregular
                run.digests.append(digest)
                run.prevs.append(prev)
                run.rows.append(rows)
                run.numbers.append(number)
                run.places.append(i)
                if fields not in run.fields:
                    run.fields[fields] = i
                run.last_time = time_text
            else:
                m = tail(line, at) if at > 0 else None
                if m is None or not line.startswith(ENTRY_PREFIX):
                    return irregular
                kind, named, link, seq, time_text = m.groups()
                if kind in _FACTS:
                    events.append((i, int(time_text), kind, parse_body(line[8:at])))
                elif kind != SENT and kind != RECEIVED and canonical(line[8:at]):
                    kinds[kind] = kinds.get(kind, 0) + 1
                else:  # not canonical, or an envelope in another shape: entry by entry
                    return irregular
            if named != node:
                if not _NAME.fullmatch(named):
                    return irregular
                if not foreign:
                    first_foreign, foreign_node = i, named
                foreign += 1
            links.append(link)
            seqs.append(seq)
        for kind in kinds:
            if not _NAME.fullmatch(kind):
                return irregular
            kind.decode("utf-8")
        segments = tuple(run.segment(kind, delivery) for (kind, delivery), run
                         in deliveries.items())
        # Each link is 64 lowercase hex digits, and names the hash of the line before.
        hex_links = b"".join(links)
        named_hashes = unhexlify(hex_links)
    except (NotCanonical, ValueError):  # binascii.Error and UnicodeDecodeError among them
        return irregular
    hashes = b"".join(leaves)
    if named_hashes.hex().encode() != hex_links or named_hashes[32:] != hashes[:-32] \
            or not _counts_from(seqs) or None in segments:
        return irregular
    first = TAIL.fullmatch(lines[0], lines[0].rfind(KIND_KEY))
    assert first is not None  # the line was taken above
    return Chunk(start, stop, True, len(lines), hashes, named_hashes[:32], int(seqs[0]),
                 int(first.group(5)), int(time_text), kinds,
                 tuple(s for s in segments if s is not None), tuple(events), end, foreign,
                 first_foreign, foreign_node)


class _Delivery:
    """The envelopes of one delivery in a chunk, as the lines give them."""

    __slots__ = ("agreement", "first_time", "last_time", "digests", "prevs", "rows", "numbers",
                 "places", "fields")

    def __init__(self, agreement: bytes, time: bytes) -> None:
        self.agreement = agreement
        self.first_time = self.last_time = time
        self.digests: list[bytes] = []
        self.prevs: list[bytes] = []
        self.rows: list[bytes] = []
        self.numbers: list[bytes] = []
        self.places: list[int] = []
        self.fields: dict[bytes, int] = {}

    def segment(self, kind: bytes, delivery: bytes) -> Segment | None:
        """The envelopes as a :class:`Segment`; None if they are not consistent among
        themselves. UnicodeDecodeError if an id or a field is not UTF-8."""
        if not _counts_from(self.numbers) or b"".join(self.prevs[1:]) != b"".join(
                self.digests[:-1]):  # a prev is 64 digits or empty: joined, they still match
            return None
        self.agreement.decode("utf-8")
        delivery.decode("utf-8")
        for fields in self.fields:
            (b"[" + fields + b"]").decode("utf-8")
        return Segment(kind, self.agreement, delivery, int(self.numbers[0]), self.prevs[0],
                       unhexlify(b"".join(self.digests)), self.digests[-1],
                       array("q", map(int, self.rows)), array("q", self.places), self.fields,
                       int(self.first_time), int(self.last_time))


def _counts_from(numbers: list[bytes]) -> bool:
    """Whether ``numbers`` (canonical decimal) count up by one from the first."""
    first = int(numbers[0])
    return b",".join(numbers) == ",".join(map(str, range(first, first + len(numbers)))).encode()


def scan_chunks(export: int, spans: Iterable[tuple[int, int]], node: bytes,
                workers: int) -> Iterator[Chunk]:
    """:func:`scan_chunk` of each span, in order; in ``workers`` processes if more than 0.

    ``export`` is a file descriptor: forked workers share it, so they read the file this
    process opened even if it is replaced meanwhile.
    """
    spans = iter(spans)
    queued: deque[tuple[int, int]] = deque()  # handed to a worker, not yet given back
    if workers > 0:
        # Imported here: a small export, checked in this process, need not pay for them.
        import multiprocessing
        from concurrent.futures.process import BrokenProcessPool

        if "fork" in multiprocessing.get_all_start_methods():  # else workers start slowly
            try:
                yield from _in_workers(export, spans, node, workers, queued)
                return
            except (OSError, ImportError, BrokenProcessPool):
                pass  # no workers (or no semaphores for them), or one died: this process goes on
    for start, stop in chain(list(queued), spans):
        yield scan_chunk(export, start, stop, node)


def _in_workers(export: int, spans: Iterator[tuple[int, int]], node: bytes, workers: int,
                queued: deque[tuple[int, int]]) -> Iterator[Chunk]:
    """Keep ``2 * workers`` chunks in the workers' hands and give back their results in order.

    ``queued`` holds the spans handed out whose results were not given back yet, so that
    the caller can do them itself if the workers fail.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    futures: deque[Future[Chunk]] = deque()
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    try:
        while True:
            while len(futures) < 2 * workers:
                span = next(spans, None)
                if span is None:
                    break
                queued.append(span)
                futures.append(pool.submit(scan_chunk, export, *span, node))
            if not futures:
                return
            chunk = futures[0].result()
            futures.popleft()
            queued.popleft()
            yield chunk
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def default_workers(entry_bytes: int) -> int:
    """How many worker processes to use for ``entry_bytes`` bytes of entries (0: none).

    None either in a process that runs other threads: a forked child gets none of them,
    only whatever lock one of them held at that moment.
    """
    if entry_bytes < POOL_BYTES or threading.active_count() > 1:
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return 0 if cores < 2 else min(cores, MAX_WORKERS)
