"""Steps 1-3 of verification: entries against checkpoints, checkpoints against each other,
cosignatures.

Every checkpoint a node signed is a *claim* about its log: its own checkpoints in its
export, the same checkpoints as counterparties cosigned them, and the ones counterparties
hold in their exports. Before the entries are read, every claim's signatures are checked
against the trusted cards (:func:`open_claims`). One streaming pass per log
(:func:`scan_log`) then recomputes the leaf hash of each entry from its bytes, checks the
numbering and the hash chain, folds the leaves into a compact range and takes the Merkle
root at every size any claim names. The log's own checkpoints are compared at once (step
1); claims held elsewhere are compared after every log was read (step 2, a fork is
reported with both checkpoints); finally each cosignature is matched with the
``checkpoint.cosigned`` entry its cosigner wrote (step 3).

Where a link of the chain breaks, the finding names the entry that was changed when the
evidence says which: a successor that pins an entry's old hash while the link after it
holds shows the entry itself was altered; a successor that names the entry before shows
an inserted one; at the end of a log, the checkpoint decides (the root is recomputed with
the hash the successor pins).
"""

from __future__ import annotations

import hashlib
import os
from binascii import unhexlify
from collections import defaultdict
from collections.abc import Generator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field

from nacl.signing import VerifyKey

from node.audit_export import ENTRY_PREFIX
from node.audit_format import GENESIS_PREV
from node.auditor.chunks import CHUNK_BYTES, KIND_KEY, TAIL, Chunk, default_workers, scan_chunks
from node.auditor.facts import Event, LogFacts, NotCanonical
from node.auditor.findings import Finding, count
from node.auditor.load import (
    END_PREFIX,
    ExportHead,
    NoteRecord,
    entry_spans,
    parse_end,
    read_span,
)
from node.checkpoints import origin_of
from node.errors import BadNote, BadSignature, InvalidProof
from node.merkle import EMPTY_ROOT, CompactRange, verify_consistency
from node.signednote import Checkpoint, open_note

_GENESIS = bytes.fromhex(GENESIS_PREV)


@dataclass(frozen=True)
class Claim:
    """A checkpoint signed by ``node``, as found in the export of log ``holder``.

    ``source`` is ``own`` (the node's own export), ``cosigned`` (the node's own export,
    with the cosignature of ``other``), ``held`` (the export of ``other``, which cosigned
    it) or ``refused`` (an entry of ``other`` recording that it refused this checkpoint).
    """

    node: str
    size: int
    root: bytes
    note: str
    source: str
    holder: int
    line: int
    other: str | None = None
    proof_from: int = 0
    proof: tuple[bytes, ...] = ()
    entry: int | None = None

    def describe(self, labels: Sequence[str]) -> str:
        where = labels[self.holder]
        if self.source == "own":
            return f"the checkpoint of size {self.size} in {where} (line {self.line})"
        if self.source == "cosigned":
            return (f"the checkpoint of size {self.size} cosigned by {self.other} in {where} "
                    f"(line {self.line})")
        if self.source == "held":
            return f"the checkpoint of size {self.size} held in {where} (line {self.line})"
        return f"the checkpoint of size {self.size} refused in {where} (entry {self.entry})"


@dataclass
class LogScan:
    """What one pass over a log found: its length, its roots, its facts, its findings."""

    head: ExportHead
    index: int
    entries: int = 0
    roots: dict[int, bytes] = field(default_factory=dict)
    damage_at: int | None = None
    attested: int = 0
    facts: LogFacts | None = None
    findings: list[Finding] = field(default_factory=list)


# --- before the entries: every claim's signatures --------------------------------------------


def open_claims(heads: Sequence[ExportHead], keys: Mapping[str, VerifyKey],
                findings: list[Finding]) -> list[Claim]:
    """Open every note of every export; claims whose signer's signature verifies."""
    claims = []
    for index, head in enumerate(heads):
        for record in head.records:
            claim = _open_record(index, head, record, keys, findings)
            if claim is not None:
                claims.append(claim)
    return claims


def _open_record(index: int, head: ExportHead, record: NoteRecord, keys: Mapping[str, VerifyKey],
                 findings: list[Finding]) -> Claim | None:
    own = record.kind in ("checkpoint", "cosigned")
    signer = head.node_id if own else str(record.peer)
    cosigner = None if record.kind == "checkpoint" else \
        str(record.peer) if record.kind == "cosigned" else head.node_id
    size = note_size(record.note)
    entry = size - 1 if own and size else None
    where = f"line {record.line}"

    def finding(rule: str, message: str) -> None:
        findings.append(Finding(head.label, entry, rule, f"{where}: {message}"))

    # 1. The signer's signature, with the signer's key only.
    key = keys.get(signer)
    if key is None:
        rule = "checkpoint.signature" if own else "cosignature.unverifiable"
        finding(rule, f"no card was given for node {signer}, so its checkpoint cannot be "
                      "verified")
        return None
    try:
        opened = open_note(record.note, {signer: key})
        checkpoint = Checkpoint.parse(opened.text, origin=origin_of(signer))
    except BadNote as e:
        finding("checkpoint.malformed", f"the checkpoint is malformed: {e.message}")
        return None
    except BadSignature as e:
        finding("checkpoint.signature", f"the checkpoint is not validly signed by node "
                                        f"{signer}: {e.message}")
        return None
    # 2. The cosigner's signature, with the cosigner's key only.
    if cosigner is not None:
        if cosigner == signer:
            finding("cosignature.invalid", "a node cannot cosign its own checkpoint")
        elif cosigner not in keys:
            finding("cosignature.unverifiable", f"no card was given for node {cosigner}, so "
                                                "its cosignature cannot be verified")
        else:
            try:
                open_note(record.note, {cosigner: keys[cosigner]})
            except (BadNote, BadSignature) as e:
                finding("cosignature.invalid", f"the checkpoint of size {checkpoint.size} of "
                                               f"node {signer} lacks a valid cosignature of "
                                               f"node {cosigner}: {e.message}")
    source = {"checkpoint": "own", "cosigned": "cosigned", "peer_checkpoint": "held"}
    return Claim(signer, checkpoint.size, checkpoint.root, record.note, source[record.kind],
                 index, record.line, cosigner if record.kind != "checkpoint" else None,
                 record.proof_from, record.proof)


def note_size(note: str) -> int | None:
    """The size a checkpoint note claims, read without trusting it (for naming entries)."""
    lines = note.split("\n")
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses
    return int(lines[1]) if len(lines) > 2 and lines[1].isascii() and lines[1].isdigit() \
        and len(lines[1]) < 21 else None


# --- step 1: one pass over a log's entries ---------------------------------------------------


@dataclass(frozen=True)
class _Break:
    """The link from entry ``j`` to entry ``j + 1`` does not hold."""

    j: int
    pin: bytes  # what entry j + 1 names as entry j's hash
    actual: bytes  # entry j's hash
    skip: bool  # entry j + 1 names entry j - 1: entry j was inserted
    copy: bool  # entry j + 1 is byte for byte entry j
    seq_moved: bool  # entry j + 1 carries another seq than its position


def scan_log(head: ExportHead, index: int, claims: Sequence[Claim], *,
             workers: int | None = None, chunk_bytes: int | None = CHUNK_BYTES) -> LogScan:
    """Step 1 for one log: stream its entries against every checkpoint claimed for it.

    The entries come in chunks of about ``chunk_bytes`` (``chunks``): the work on each
    entry that needs no other entry is done for a whole chunk, in ``workers`` worker
    processes (None: as many as suit the export and the machine; 0: in this process), and
    the pass below takes each regular chunk whole; it reads any other chunk again and takes
    it entry by entry. The findings do not depend on how the entries were cut: with
    ``chunk_bytes`` None every entry is taken on its own, the reference the rest must meet.
    """
    scan = LogScan(head, index)
    run = _Pass(scan, claims)
    with open(head.path, "rb") as f, closing(_chunks(head, f.fileno(), workers,
                                                     chunk_bytes)) as chunks:
        for chunk in chunks:
            if chunk.regular and run.take(chunk):
                continue
            lines, complete = read_span(f.fileno(), chunk.start, chunk.stop)
            last = len(lines) - 1
            for i, line in enumerate(lines):
                run.entry(line, complete or i < last)
    run.finish()
    return scan


def _chunks(head: ExportHead, export: int, workers: int | None,
            chunk_bytes: int | None) -> Generator[Chunk, None, None]:
    spans = entry_spans(export, head.entries_offset, chunk_bytes or CHUNK_BYTES)
    if chunk_bytes is None:  # the reference: each chunk taken entry by entry
        yield from (Chunk(start, stop, False) for start, stop in spans)
        return
    if workers is None:
        workers = default_workers(os.fstat(export).st_size - head.entries_offset)
    yield from scan_chunks(export, spans, head.node_id.encode(), workers)


class _Pass:
    """The sequential part of step 1: the state carried from one entry to the next.

    :meth:`entry` takes one entry line as it is, :meth:`take` a regular chunk at once (the
    same outcome as its entries one by one), :meth:`finish` closes the log.
    """

    def __init__(self, scan: LogScan, claims: Sequence[Claim]) -> None:
        self.scan = scan
        self.facts = scan.facts = LogFacts(scan.index, scan.head.label)
        self.findings = scan.findings
        self.label = scan.head.label
        self.node_id = scan.head.node_id
        self.node = self.node_id.encode()
        self.by_size: dict[int, list[Claim]] = defaultdict(list)
        for claim in claims:
            self.by_size[claim.size].append(claim)
        self.mismatches: list[tuple[int, Claim]] = []
        if 0 in self.by_size:
            scan.roots[0] = EMPTY_ROOT
            self.mismatches.extend((0, c) for c in self.by_size[0]
                                   if c.source == "own" and c.root != EMPTY_ROOT)
        self.sizes = sorted(s for s in self.by_size if s > 0)
        self.size_at = 0
        self.next_size = self.sizes[0] if self.sizes else -1
        # The compact range lags two leaves behind, so that at the end the last link can
        # still be tested against the checkpoint (see ``_resolve``). ``_fold`` folds a chunk
        # of leaves at a time: a method call per leaf would cost a tenth of the pass.
        self.stack: list[bytes] = []
        self.folded = 0
        self.older = self.newer = b""
        self.n = 0
        self.prev_leaf, self.prev2_leaf = _GENESIS, b""  # the genesis "hash": 32 zero bytes
        self.last_offset = 0
        self.foreign = 0
        self.pending: _Break | None = None
        self.end_count: int | None = None
        self.after_end = 0

    def entry(self, line: bytes, complete: bool) -> None:
        """Take the next line (without its newline; ``complete`` if it had one)."""
        if self.end_count is not None:
            self.after_end += 1
        elif line.startswith(END_PREFIX):
            self.end_count = parse_end(line)
            if self.end_count is not None:
                return
        n = self.n
        leaf = hashlib.sha256(b"\x00" + line).digest()
        link: bytes | None = None
        seq = -1
        at = line.rfind(KIND_KEY)
        m = TAIL.fullmatch(line, at) if complete and at > 0 else None
        if m is None or not line.startswith(ENTRY_PREFIX):
            self._finding(n, "entry.malformed", f"entry {n} is not an audit entry in canonical "
                                                "form (its fields after the body are missing "
                                                "or misspelt)")
        else:
            kind, node, link_hex, seq_text, time_text = m.groups()
            try:
                self.facts.add(n, int(time_text), kind, line, 8, at)
            except NotCanonical as e:
                self._finding(n, "entry.malformed", f"entry {n} is not a canonical audit "
                                                    f"entry: {e}")
            link = unhexlify(link_hex)
            seq = int(seq_text)
            if node != self.node:
                self._foreign(n, 1, node)
            self._seq(n, seq)
        self._link(n, link, leaf, seq)
        self.prev2_leaf, self.prev_leaf = self.prev_leaf, leaf
        self._fold(leaf)

    def take(self, chunk: Chunk) -> bool:
        """Take a regular chunk whole; False (nothing taken) if its envelopes do not go on
        from where their deliveries are, or after the end record: then entry by entry."""
        if self.end_count is not None or not self.facts.fits(chunk.segments):
            return False
        if chunk.entries:
            n, leaves = self.n, chunk.leaves
            self.facts.take_chunk(n, chunk.segments, chunk.events, chunk.kinds,
                                  chunk.first_time, chunk.last_time)
            if chunk.foreign:
                self._foreign(n + chunk.first_foreign, chunk.foreign, chunk.foreign_node)
            self._seq(n, chunk.first_seq)
            # Inside the chunk each entry names the hash of the one before: only its first
            # link is new, and the link after it holds.
            self._link(n, chunk.first_link, leaves[:32], chunk.first_seq)
            if self.pending is not None and chunk.entries > 1:
                self._resolve(self.pending, True)
                self.pending = None
            self.prev2_leaf = leaves[-64:-32] if chunk.entries > 1 else self.prev_leaf
            self.prev_leaf = leaves[-32:]
            self._fold(leaves)
        if chunk.end is not None:
            self.end_count = chunk.end
        return True

    def finish(self) -> None:
        """After the last line: the last link, the end record and the checkpoints."""
        n, pending, scan = self.n, self.pending, self.scan
        # The last link is pinned by no successor: the checkpoint of the whole log decides.
        if pending is not None:
            proven = False
            if 0 <= pending.j == n - 2 and self.by_size.get(n):
                trial = CompactRange(self.folded, self.stack)
                trial.extend((pending.pin, self.newer))
                proven = any(c.root == trial.root() for c in self.by_size[n])
            self._resolve(pending, False, proven)
        if self.foreign > 1:
            self._finding(n - 1, "entry.node", f"{self.foreign} entries in all name another "
                                               f"node than {self.node_id}")
        scan.entries = n
        _end_record(scan, self.end_count, self.after_end)
        _finish_step1(scan, self.by_size, self.mismatches)

    # --- the checks, one entry (or the first of a chunk) at a time ----------------------------

    def _finding(self, pos: int, rule: str, message: str) -> None:
        self.findings.append(Finding(self.label, pos, rule, message))

    def _foreign(self, pos: int, count: int, node: bytes) -> None:
        """``count`` entries from ``pos`` on name ``node`` (the first of them) in this log."""
        if not self.foreign:
            self._finding(pos, "entry.node", f"entry {pos} names node "
                                             f"{node.decode('utf-8', 'replace')}, not "
                                             f"{self.node_id} whose log this is")
        self.foreign += count

    def _seq(self, n: int, seq: int) -> None:
        offset = seq - n
        if offset != self.last_offset:
            if offset:
                self._finding(n, "entry.seq", f"entry {n} carries seq {seq}: "
                                              + ("entries are missing before it"
                                                 if offset > 0 else
                                                 "it repeats or precedes an earlier entry"))
            self.last_offset = offset

    def _link(self, n: int, link: bytes | None, leaf: bytes, seq: int) -> None:
        """Entry ``n`` names ``link`` as the previous entry's hash (None: names nothing)."""
        holds = link == self.prev_leaf
        if self.pending is not None:
            self._resolve(self.pending, holds)
            self.pending = None
        if link is not None and not holds:
            self.pending = _Break(n - 1, link, self.prev_leaf, n >= 1 and link == self.prev2_leaf,
                                  leaf == self.prev_leaf, seq != n)

    def _resolve(self, b: _Break, next_link_holds: bool, proven: bool = False) -> None:
        j = b.j
        finding = self._finding
        if j < 0:
            finding(0, "entry.chain", "the first entry must name the genesis hash "
                                      f"{_short(_GENESIS)} as its previous; it names "
                                      f"{_short(b.pin)}")
        elif b.copy:
            finding(j + 1, "entry.chain", f"entry {j + 1} is a second copy of entry {j}")
        elif b.skip:
            finding(j, "entry.chain", f"entry {j} is not part of the chain: entry {j + 1} names "
                                      f"entry {j - 1} as its previous, so entry {j} was "
                                      "inserted")
        elif b.seq_moved:
            finding(j + 1, "entry.chain", f"entry {j + 1} does not name entry {j} as its "
                                          "previous: entries are missing or out of order here")
        elif next_link_holds or proven:
            why = "and the checkpoint verifies with that hash" if proven else \
                f"and entry {j + 1} is itself pinned by its successor"
            finding(j, "entry.altered", f"entry {j} was altered: it hashes to "
                                        f"{_short(b.actual)}, but entry {j + 1} pins its hash "
                                        f"as {_short(b.pin)}, {why}")
        else:
            finding(j + 1, "entry.chain", f"entry {j + 1} names {_short(b.pin)} as the previous "
                                          f"entry's hash, but entry {j} hashes to "
                                          f"{_short(b.actual)}")

    def _fold(self, leaves: bytes) -> None:
        """Append ``leaves`` (leaf hashes end to end); take the root at each claimed size."""
        sha = hashlib.sha256
        stack, folded, older, newer = self.stack, self.folded, self.older, self.newer
        n, next_size = self.n, self.next_size
        for at in range(0, len(leaves), 32):
            # Fold the leaf two places back into the compact range (as CompactRange.append).
            if n >= 2:
                merged, carry = older, folded
                while carry & 1:
                    merged = sha(b"\x01" + stack.pop() + merged).digest()
                    carry >>= 1
                stack.append(merged)
                folded += 1
            older, newer = newer, leaves[at:at + 32]
            n += 1
            if n == next_size:
                here = CompactRange(folded, stack)
                here.extend((older, newer)[2 - (n - folded):])
                root = self.scan.roots[n] = here.root()
                self.mismatches.extend((n, c) for c in self.by_size[n]
                                       if c.source == "own" and c.root != root)
                self.size_at += 1
                next_size = self.sizes[self.size_at] if self.size_at < len(self.sizes) else -1
        self.folded, self.older, self.newer = folded, older, newer
        self.n, self.next_size = n, next_size


def _end_record(scan: LogScan, end_count: int | None, after_end: int) -> None:
    label = scan.head.label
    if end_count is None:
        scan.findings.append(Finding(label, None, "export.malformed",
                                     "the export has no end record: it was cut off"))
    elif end_count != scan.entries - after_end:
        scan.findings.append(Finding(label, None, "export.malformed",
                                     f"the end record counts {end_count} entries; the export "
                                     f"holds {scan.entries - after_end}"))
    if after_end:
        scan.findings.append(Finding(label, None, "export.malformed",
                                     f"{after_end} lines follow the end record"))


def _finish_step1(scan: LogScan, by_size: Mapping[int, list[Claim]],
                  mismatches: list[tuple[int, Claim]]) -> None:
    n, label, node = scan.entries, scan.head.label, scan.head.node_id
    damaged = [f.entry for f in scan.findings if f.entry is not None
               and f.rule.startswith("entry.")]
    first_damage = min((e for e in damaged if e is not None), default=None)
    # A checkpoint of the node that covers more entries than the export holds.
    beyond = [c for size, cs in by_size.items() if size > n for c in cs if c.source == "own"]
    if beyond:
        largest = max(beyond, key=lambda c: c.size)
        scan.findings.append(Finding(
            label, n, "checkpoint.truncated",
            f"the checkpoint of size {largest.size} (line {largest.line}) signed by {node} "
            f"covers entries up to {largest.size - 1}, but the export ends after entry {n - 1}: "
            f"entries {n}..{largest.size - 1} are missing"))
        first_damage = n if first_damage is None else min(first_damage, n)
    # A checkpoint whose root the entries do not give.
    if mismatches:
        size, claim = mismatches[0]
        good = max((s for s, root in scan.roots.items() if s < size and any(
            c.root == root for c in by_size[s] if c.source == "own")), default=0)
        if first_damage is not None and first_damage < size:
            where, why = first_damage, f"see entry {first_damage}"
        elif size == n and n > 0:
            where, why = n - 1, (f"the chain is intact, so entry {n - 1} (which no later entry "
                                 f"pins) was altered, or entries from {good} on were rewritten "
                                 "consistently")
        else:
            where, why = good, f"entries {good}..{size - 1} were rewritten consistently"
        later = len({s for s, _ in mismatches}) - 1
        scan.findings.append(Finding(
            label, where, "checkpoint.root",
            f"the checkpoint of size {size} (line {claim.line}) has root {_short(claim.root)}, "
            f"but the exported entries give {_short(scan.roots[size])}: {why}"
            + (f" (so does {count(later, 'later checkpoint')})" if later else "")))
        first_damage = where if first_damage is None else min(first_damage, where)
    scan.damage_at = first_damage
    # Entries no checkpoint of the node covers.
    matching = [s for s, root in scan.roots.items() if any(c.root == root for c in by_size[s])]
    scan.attested = max(matching, default=0)
    if n > scan.attested and not mismatches and not beyond:
        scan.findings.append(Finding(
            label, scan.attested, "entry.unattested",
            f"entries {scan.attested}..{n - 1} are not covered by any checkpoint signed by "
            f"{node}; an unattested entry can be changed without trace"))


# --- step 2: consistency between all checkpoints of a log ------------------------------------


def check_consistency(scans: Mapping[str, LogScan], claims: Sequence[Claim],
                      labels: Sequence[str], cosigned_events: Mapping[tuple[int, str, int], Event],
                      grace_ms: int) -> list[Finding]:
    """Step 2: every claim of a node against the others and against the node's entries."""
    findings: list[Finding] = []
    by_node: dict[str, list[Claim]] = defaultdict(list)
    for claim in claims:
        by_node[claim.node].append(claim)
    for node, node_claims in by_node.items():
        scan = scans.get(node)

        # 1. Two checkpoints of one size must have one root.
        forked: set[int] = set()
        by_size: dict[int, list[Claim]] = defaultdict(list)
        for claim in node_claims:
            by_size[claim.size].append(claim)
        for size, same in sorted(by_size.items()):
            first = same[0]
            other = next((c for c in same if c.root != first.root), None)
            if other is not None:
                forked.add(size)
                at, entry = _where(other, scan, labels, cosigned_events)
                findings.append(Finding(at, entry, "checkpoint.fork", (
                    f"node {node} signed two checkpoints of size {size} with different roots: "
                    f"{first.describe(labels)} has {_short(first.root)}, "
                    f"{other.describe(labels)} has {_short(other.root)}")))
        if scan is None:
            continue
        # 2. Every checkpoint held elsewhere must fit the node's exported entries.
        for claim in node_claims:
            if claim.source == "own" or claim.size in forked:
                continue
            if claim.size > scan.entries:
                _beyond_export(findings, scan, claim, labels, cosigned_events, grace_ms)
                continue
            if scan.damage_at is not None and claim.size > scan.damage_at:
                continue  # step 1 already found the exported entries changed before this size
            root = scan.roots.get(claim.size)
            if root is not None and root != claim.root:
                forked.add(claim.size)
                proof = _own_covering(node_claims, claim.size, scan)
                findings.append(Finding(
                    labels[scan.index], claim.size - 1 if claim.size else None, "checkpoint.fork",
                    f"{claim.describe(labels)} was signed by {node} with root "
                    f"{_short(claim.root)}, but {node}'s exported entries give "
                    f"{_short(root)} at that size"
                    + (f" and {proof.describe(labels)} signs them" if proof else "")
                    + f": {node} rewrote its log after that checkpoint was cosigned"))
    # 3. Held checkpoints were accepted with consistency proofs that hold.
    findings.extend(_held_proofs(claims, labels, cosigned_events))
    return findings


def _where(claim: Claim, scan: LogScan | None, labels: Sequence[str],
           cosigned_events: Mapping[tuple[int, str, int], Event]) -> tuple[str, int | None]:
    """The node's log at the claim's last entry, else where the claim is held."""
    if scan is not None:
        return labels[scan.index], claim.size - 1 if claim.size else None
    event = cosigned_events.get((claim.holder, claim.node, claim.size))
    return labels[claim.holder], claim.entry if event is None else event.pos


def _beyond_export(findings: list[Finding], scan: LogScan, claim: Claim, labels: Sequence[str],
                   cosigned_events: Mapping[tuple[int, str, int], Event], grace_ms: int) -> None:
    """A claim larger than the export: truncation, unless the export predates the claim."""
    facts = scan.facts
    assert facts is not None
    if claim.source in ("held", "refused"):
        event = cosigned_events.get((claim.holder, claim.node, claim.size))
        if event is None or event.time + grace_ms >= facts.last_time:
            return  # the export may simply be older than the cosignature
    findings.append(Finding(
        labels[scan.index], scan.entries, "checkpoint.truncated",
        f"{claim.describe(labels)} was signed by {claim.node} for {claim.size} entries, but "
        f"its export, made later, holds only {scan.entries}"))


def _own_covering(claims: Sequence[Claim], size: int, scan: LogScan) -> Claim | None:
    """The node's own checkpoint of the smallest size >= ``size`` that its entries verify."""
    own = sorted((c for c in claims if c.source == "own" and c.size >= size
                  and scan.roots.get(c.size) == c.root), key=lambda c: c.size)
    return own[0] if own else None


def _held_proofs(claims: Sequence[Claim], labels: Sequence[str],
                 cosigned_events: Mapping[tuple[int, str, int], Event]) -> list[Finding]:
    findings = []
    held: dict[tuple[int, str], list[Claim]] = defaultdict(list)
    for claim in claims:
        if claim.source == "held":
            held[(claim.holder, claim.node)].append(claim)
    for (holder, node), series in held.items():
        series.sort(key=lambda c: c.size)
        by_size = {c.size: c for c in series}
        for number, claim in enumerate(series):
            event = cosigned_events.get((holder, node, claim.size))
            entry = None if event is None else event.pos
            problem = None
            if claim.proof_from == 0:
                if number > 0 and not claim.proof:
                    problem = (f"it was accepted without a proof although the checkpoint of "
                               f"size {series[number - 1].size} was already held")
            elif claim.proof_from not in by_size:
                problem = (f"its proof starts from size {claim.proof_from}, but no checkpoint "
                           "of that size is held")
            else:
                base = by_size[claim.proof_from]
                try:
                    verify_consistency(base.size, claim.size, base.root, claim.root, claim.proof)
                except InvalidProof as e:
                    problem = f"its consistency proof from size {base.size} fails: {e.message}"
            if problem:
                findings.append(Finding(labels[holder], entry, "consistency.proof",
                                        f"{claim.describe(labels)} of node {node}: {problem}"))
    return findings


def refused_claims(facts: Sequence[LogFacts], keys: Mapping[str, VerifyKey],
                   labels: Sequence[str]) -> tuple[list[Claim], list[Finding]]:
    """Each ``checkpoint.refused`` entry: a finding, and the refused checkpoint as a claim."""
    claims, findings = [], []
    for log in facts:
        for event in log.events:
            if event.kind != "checkpoint.refused":
                continue
            body = event.body
            peer, reason = body.get("peer"), body.get("reason")
            findings.append(Finding(labels[log.index], event.pos, "checkpoint.refused",
                                    f"this node refused a checkpoint of node {peer}: {reason}"))
            offered = body.get("offered")
            if not isinstance(peer, str) or not isinstance(offered, str) or peer not in keys:
                continue
            try:
                opened = open_note(offered, {peer: keys[peer]})
                checkpoint = Checkpoint.parse(opened.text, origin=origin_of(peer))
            except (BadNote, BadSignature):
                continue
            claims.append(Claim(peer, checkpoint.size, checkpoint.root, offered, "refused",
                                log.index, 0, entry=event.pos))
    return claims, findings


def check_late_claims(scans: Mapping[str, LogScan], late: Sequence[Claim],
                      labels: Sequence[str]) -> list[Finding]:
    """Refused checkpoints (found inside entries) against the roots the node's pass took."""
    findings = []
    for claim in late:
        scan = scans.get(claim.node)
        if scan is None:
            continue
        root = scan.roots.get(claim.size)
        if root is not None and root != claim.root:
            findings.append(Finding(
                labels[scan.index], claim.size - 1 if claim.size else None, "checkpoint.fork",
                f"{claim.describe(labels)} was signed by {claim.node} with root "
                f"{_short(claim.root)}, but its exported entries give {_short(root)} at that "
                "size"))
    return findings


# --- step 3: cosignatures ----------------------------------------------------------------------


def cosigned_entries(facts: Sequence[LogFacts],
                     findings: list[Finding]) -> dict[tuple[int, str, int], Event]:
    """The ``checkpoint.cosigned`` entries by (log, peer, size)."""
    found: dict[tuple[int, str, int], Event] = {}
    for log in facts:
        for event in log.events:
            if event.kind != "checkpoint.cosigned":
                continue
            body = event.body
            peer, size, root = body.get("peer"), body.get("size"), body.get("root")
            if set(body) != {"peer", "size", "root"} or not isinstance(peer, str) \
                    or not isinstance(size, int) or not isinstance(root, str):
                findings.append(Finding(log.label, event.pos, "event.malformed",
                                        "checkpoint.cosigned must have peer, size and root"))
                continue
            found.setdefault((log.index, peer, size), event)
    return found


def check_cosignatures(heads: Sequence[ExportHead], scans: Mapping[str, LogScan],
                       claims: Sequence[Claim], labels: Sequence[str],
                       cosigned_events: Mapping[tuple[int, str, int], Event]) -> list[Finding]:
    """Step 3: each cosignature given is recorded by its cosigner, and each record is given."""
    findings = []
    recorded = {(index, str(r.peer), note_size(r.note)) for index, head in enumerate(heads)
                for r in head.records if r.kind == "peer_checkpoint"}
    for claim in claims:
        if claim.source == "held":
            # The holder cosigned the node's checkpoint: its log says so, with the same root.
            event = cosigned_events.get((claim.holder, claim.node, claim.size))
            if event is None:
                findings.append(Finding(labels[claim.holder], None, "cosignature.unrecorded", (
                    f"line {claim.line}: this node holds node {claim.node}'s checkpoint of size "
                    f"{claim.size} with its cosignature, but its log has no checkpoint.cosigned "
                    "entry for it")))
            elif event.body.get("root") != claim.root.hex():
                findings.append(Finding(labels[claim.holder], event.pos, "cosignature.unrecorded",
                                        f"the entry records root {event.body.get('root')} for "
                                        f"node {claim.node}'s checkpoint of size {claim.size}; "
                                        f"the held checkpoint has {claim.root.hex()}"))
        elif claim.source == "cosigned" and claim.other is not None and claim.other in scans:
            # The cosigner's own log must record that it cosigned this checkpoint.
            cosigner = scans[claim.other]
            key = (cosigner.index, claim.node, claim.size)
            if key not in cosigned_events:
                findings.append(Finding(labels[cosigner.index], None, "cosignature.unrecorded", (
                    f"node {claim.other} cosigned node {claim.node}'s checkpoint of size "
                    f"{claim.size} ({claim.describe(labels)}), but its log has no "
                    "checkpoint.cosigned entry for it")))
    for key, event in sorted(cosigned_events.items(), key=lambda kv: (kv[0][0], kv[1].pos)):
        holder, peer, size = key
        if key not in recorded:
            findings.append(Finding(labels[holder], event.pos, "cosignature.unrecorded", (
                f"the entry records cosigning node {peer}'s checkpoint of size {size}, but "
                "this export holds no such checkpoint")))
    return findings


def _short(value: bytes) -> str:
    return value.hex()[:16] + "…"
