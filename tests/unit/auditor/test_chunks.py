"""Reading a log in chunks, in worker processes or not, finds exactly what reading it entry by
entry finds.

Step 1 cuts an export's entries into spans of whole lines (``load.entry_spans``), sums up
each span in one go (``chunks.summarize``) and takes a *regular* chunk whole; anything else
is read again entry by entry. So: spans must cut at every line end and nowhere else, a
chunk may be called regular only if taking it entry by entry would give the same, and the
whole verification must not depend on the chunk size or on the worker processes, for clean
and for damaged logs alike (``chunk_bytes=None`` is the entry-by-entry reference).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.auditor.chunks import POOL_BYTES, Chunk, default_workers, scan_chunks, summarize
from node.auditor.load import entry_spans, read_head, read_span
from node.auditor.verify import Verification, verify
from tests.unit.auditor.crafted import CraftedLog, at, first_entry_line
from tests.unit.auditor.stories import Story

# --- spans of whole lines ----------------------------------------------------------------------

HEAD = b'{"a header":1}\n'
FILES = {
    "lines ending with a newline": b'{"body":1}\nbb\n\nccc\n',
    "the last line cut off": b"a\nbb\nccc",
    "one line": b"abc\n",
    "blank lines only": b"\n\n\n",
    "nothing after the head": b"",
    "one byte without a newline": b"x",
}


def _spans(path: Path, size: int) -> list[tuple[int, int]]:
    with open(path, "rb") as f:
        return list(entry_spans(f.fileno(), len(HEAD), size))


def _lines(path: Path, spans: list[tuple[int, int]]) -> list[tuple[bytes, bool]]:
    with open(path, "rb") as f:
        lines = []
        for start, stop in spans:
            got, complete = read_span(f.fileno(), start, stop)
            lines += [(line, complete or i < len(got) - 1) for i, line in enumerate(got)]
        return lines


def _expected(body: bytes) -> list[tuple[bytes, bool]]:
    parts = body.split(b"\n")
    last = parts.pop()
    return [(line, True) for line in parts] + ([(last, False)] if last else [])


def _check_spans(path: Path, body: bytes, size: int) -> None:
    spans = _spans(path, size)
    end = len(HEAD) + len(body)
    # Contiguous from the head to the end of the file, none empty.
    assert [start for start, _ in spans] == [len(HEAD), *(stop for _, stop in spans)][:-1] \
        if spans else not body
    assert all(start < stop for start, stop in spans)
    assert not spans or spans[-1][1] == end
    data = HEAD + body
    # Each span ends just after a newline (or at the end of the file), the first newline at
    # or after size - 1 bytes into it.
    for start, stop in spans:
        first = data.find(b"\n", start + size - 1)
        assert stop == (end if first < 0 else first + 1), (size, start, stop)
    assert _lines(path, spans) == _expected(body)


@pytest.mark.parametrize("body", list(FILES.values()), ids=list(FILES))
def test_spans_cut_at_line_ends_for_every_size(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "export.jsonl"
    path.write_bytes(HEAD + body)
    for size in range(1, len(body) + 3):
        _check_spans(path, body, size)


def test_spans_find_line_ends_beyond_one_read(tmp_path: Path) -> None:
    """Lines longer than the 64 KiB piece a line end is looked for in."""
    body = b"x" * 70_000 + b"\n" + b"y" * 140_000 + b"\n" + b"z" * 5
    path = tmp_path / "export.jsonl"
    path.write_bytes(HEAD + body)
    for size in (1, 2, 65_535, 65_536, 65_537, 70_000, 70_001, 70_002, 140_000, 10**9):
        _check_spans(path, body, size)


# --- which chunks are regular ------------------------------------------------------------------

NODE = b"n" + b"0" * 32
OTHER = b"n" + b"1" * 32
PLAIN = b'{"address":"127.0.0.1:7001"}'


def _envelope(delivery: bytes, seq: int, *, agreement: bytes = b"agr-1",
              prev: bytes | None = None) -> bytes:
    digest = hashlib.sha256(delivery + b"/%d" % seq).hexdigest().encode()
    before = b"" if seq == 0 else hashlib.sha256(delivery + b"/%d" % (seq - 1)).hexdigest(
    ).encode()
    return (b'{"agreement":"' + agreement + b'","delivery":"' + delivery + b'","digest":"'
            + digest + b'","fields":["id","value"],"prev":"' + (before if prev is None else prev)
            + b'","rows":10,"seq":%d}' % seq)


def _chained(*entries: dict[str, bytes]) -> list[bytes]:
    """Entry lines from their body and kind (and anything else to misspell), each naming
    the leaf hash of the one before, numbered from 0."""
    lines: list[bytes] = []
    prev = b"0" * 64
    for seq, entry in enumerate(entries):
        line = (b'{"body":' + entry.get("body", PLAIN) + b',"kind":"'
                + entry.get("kind", b"node.started") + b'","node":"' + entry.get("node", NODE)
                + b'","prev":"' + entry.get("prev", prev) + b'","seq":'
                + entry.get("seq", b"%d" % seq) + b',"time":' + entry.get("time", b"1700000000000")
                + b',"v":1}')
        lines.append(line)
        prev = hashlib.sha256(b"\x00" + line).hexdigest().encode()
    return lines


def _upper_prev(lines: list[bytes]) -> list[bytes]:
    """The second entry names the first one's hash in capitals (the chain holds otherwise)."""
    first = hashlib.sha256(b"\x00" + lines[0]).hexdigest().encode()
    return _chained({}, {"prev": first.upper()})


_END = b'{"entries":2,"type":"end"}'
_COSIGNED = b'{"peer":"' + OTHER + b'","root":"' + b"ab" * 32 + b'","size":3}'

REGULAR: dict[str, tuple[list[bytes], bool, Callable[[Chunk], bool]]] = {
    "plain entries": (_chained({}, {}, {}), True, lambda c: c.kinds == {b"node.started": 3}),
    "envelopes of two deliveries in turn": (_chained(
        {"kind": b"envelope.sent", "body": _envelope(b"d1", 0)},
        {"kind": b"envelope.sent", "body": _envelope(b"d2", 0)},
        {"kind": b"envelope.sent", "body": _envelope(b"d1", 1)},
        {"kind": b"envelope.received", "body": _envelope(b"d1", 0)},
    ), True, lambda c: [len(s.rows) for s in c.segments] == [2, 1, 1]),
    "an envelope that goes on from an earlier chunk": (_chained(
        {"kind": b"envelope.sent", "body": _envelope(b"d1", 7)}), True,
        lambda c: c.segments[0].first_seq == 7),
    "an event kept whole": (_chained({"kind": b"checkpoint.cosigned", "body": _COSIGNED}),
                            True, lambda c: len(c.events) == 1),
    "an entry of another node": (_chained({}, {"node": OTHER}, {"node": OTHER}), True,
                                 lambda c: (c.foreign, c.first_foreign) == (2, 1)),
    "the end record last": ([*_chained({}, {}), _END], True, lambda c: c.end == 2),
    "only the end record": ([_END], True, lambda c: c.entries == 0 and c.end == 2),
    "no lines": ([], False, lambda c: True),
    "a body with a space": (_chained({}, {"body": b'{"address": "x"}'}), False, bool),
    "a body with its keys out of order": (_chained({"body": b'{"b":1,"a":2}'}), False, bool),
    "a body with a float": (_chained({"body": b'{"a":1.5}'}), False, bool),
    "a body that is not UTF-8": (_chained({"body": b'{"a":"\xff"}'}), False, bool),
    "an event body not canonical": (_chained(
        {"kind": b"checkpoint.cosigned", "body": b'{"size":3,"peer":"x"}'}), False, bool),
    "an envelope body in another canonical shape": (_chained(
        {"kind": b"envelope.sent", "body": b'{"agreement":"agr-1"}'}), False, bool),
    "an envelope body not canonical": (_chained(
        {"kind": b"envelope.sent", "body": _envelope(b"d1", 0).replace(b",", b", ", 1)}),
        False, bool),
    "an envelope skipping a seq": (_chained(
        {"kind": b"envelope.sent", "body": _envelope(b"d1", 0)},
        {"kind": b"envelope.sent", "body": _envelope(b"d1", 2)}), False, bool),
    "an envelope not naming the digest before": (_chained(
        {"kind": b"envelope.sent", "body": _envelope(b"d1", 0)},
        {"kind": b"envelope.sent", "body": _envelope(b"d1", 1, prev=b"ab" * 32)}), False, bool),
    "an envelope of another agreement": (_chained(
        {"kind": b"envelope.sent", "body": _envelope(b"d1", 0)},
        {"kind": b"envelope.sent", "body": _envelope(b"d1", 1, agreement=b"agr-2")}), False,
        bool),
    "an agreement id that is not UTF-8": (_chained(
        {"kind": b"envelope.sent", "body": _envelope(b"d1", 0, agreement=b"agr-\xff")}), False,
        bool),
    "a kind with a backslash": (_chained({"kind": b"node\\\\started"}), False, bool),
    "a kind with a control character": (_chained({"kind": b"node\x01started"}), False, bool),
    "a kind that is not UTF-8": (_chained({"kind": b"node.\xff"}), False, bool),
    "a node with a backslash": (_chained({"node": b"n\\\\1"}), False, bool),
    "a previous hash in capitals": (_upper_prev(_chained({})), False, bool),
    "a previous hash that is not hex": (_chained({}, {"prev": b"g" * 64}), False, bool),
    "a link that does not hold": (_chained({}, {"prev": b"0" * 64}), False, bool),
    "a gap in the numbering": (_chained({}, {"seq": b"5"}), False, bool),
    "a seq with a leading zero": (_chained({}, {"seq": b"01"}), False, bool),
    "a time with a leading zero": (_chained({"time": b"01"}), False, bool),
    "fields after the body misspelt": ([_chained({})[0].replace(b'"v":1', b'"v":2')], False,
                                       bool),
    "a line that is no entry": ([b'{"note":1}'], False, bool),
    "an end record before the last line": ([*_chained({}), _END, *_chained({})], False, bool),
    "an end record that is not one": ([*_chained({}), b'{"entries":-1,"type":"end"}'], False,
                                      bool),
}


@pytest.mark.parametrize(("lines", "regular", "holds"), list(REGULAR.values()), ids=list(REGULAR))
def test_a_chunk_is_regular_only_if_each_entry_would_pass_on_its_own(
        lines: list[bytes], regular: bool, holds: Callable[[Chunk], bool]) -> None:
    chunk = summarize(list(lines), True, 0, 1, NODE)
    assert chunk.regular is regular
    assert holds(chunk)


def test_a_chunk_whose_last_line_lacks_its_newline_is_irregular() -> None:
    assert summarize(_chained({}, {}), True, 0, 1, NODE).regular
    assert not summarize(_chained({}, {}), False, 0, 1, NODE).regular


def test_a_log_whose_node_id_a_tail_cannot_hold_has_no_regular_chunk() -> None:
    lines = _chained({"node": b"n\\1"})
    assert not summarize(lines, True, 0, 1, b"n\\1").regular


# --- the same verification whatever the chunks -------------------------------------------------

def _story(folder: Path, tell: Callable[[Story], None]) -> tuple[list[Path], list[Path]]:
    story = Story()
    tell(story)
    return story.write(folder)


def _lifecycle(s: Story) -> None:
    s.agree(10)
    first = s.deliver(20, envelopes=5)
    second = s.deliver(30, envelopes=3, altered=1)
    s.deliver(40, envelopes=4, received=2)
    s.read(50, first)
    s.read(51, second)
    s.destroy(60, [first, second])
    s.finish(100)


def _edit(line_of: Callable[[list[bytes]], int],
          change: Callable[[list[bytes], int], None]) -> Callable[[Path], None]:
    """A change to the provider's export file."""
    def mutate(folder: Path) -> None:
        path = folder / "provider.jsonl"
        lines = path.read_bytes().split(b"\n")[:-1]
        change(lines, line_of(lines))
        path.write_bytes(b"\n".join(lines) + b"\n")
    return mutate


def _nth_entry(k: int) -> Callable[[list[bytes]], int]:
    return lambda lines: first_entry_line(lines) + k


def _nth_envelope(k: int) -> Callable[[list[bytes]], int]:
    return lambda lines: [i for i, line in enumerate(lines) if b'"kind":"envelope.' in line][k]


def _delete(lines: list[bytes], i: int) -> None:
    del lines[i]


def _swap(lines: list[bytes], i: int) -> None:
    lines[i], lines[i + 1] = lines[i + 1], lines[i]


def _duplicate(lines: list[bytes], i: int) -> None:
    lines.insert(i, lines[i])


def _alter(lines: list[bytes], i: int) -> None:
    lines[i] = lines[i].replace(b'"rows":1000', b'"rows":1001').replace(b"127.0.0.1", b"10.0.0.1")


def _space(lines: list[bytes], i: int) -> None:
    lines[i] = lines[i].replace(b'{"body":{"', b'{"body":{ "', 1)


def _foreign(lines: list[bytes], i: int) -> None:
    node = json.loads(lines[i])["node"].encode()
    lines[i] = lines[i].replace(node, b"n" + b"9" * 32)


def _garbage(lines: list[bytes], i: int) -> None:
    lines[i] = b"not json at all"


def _cut_off(folder: Path) -> None:
    path = folder / "provider.jsonl"
    path.write_bytes(path.read_bytes()[:-40])


def _after_end(folder: Path) -> None:
    path = folder / "provider.jsonl"
    lines = path.read_bytes().split(b"\n")[:-1]
    path.write_bytes(b"\n".join([*lines, lines[-2], lines[-1]]) + b"\n")


def _no_end(folder: Path) -> None:
    path = folder / "provider.jsonl"
    lines = path.read_bytes().split(b"\n")[:-1]
    path.write_bytes(b"\n".join(lines[:-1]) + b"\n")


def _misbehaving_envelopes(folder: Path) -> None:
    """A provider whose envelopes skip, repeat, change agreement and break their chain."""
    log = CraftedLog("provider", "data.qingdao")
    log.append("node.started", {"address": "127.0.0.1:7001"}, at(0))
    for seq, agreement, prev in ((0, "agr-1", ""), (1, "agr-1", "d0"), (3, "agr-1", "d1"),
                                 (2, "agr-1", "d3"), (4, "agr-2", "d3"), (4, "agr-1", "zz"),
                                 (5, "agr-1", "d4")):
        digest = hashlib.sha256(f"d{seq}".encode()).hexdigest()
        named = hashlib.sha256(prev.encode()).hexdigest() if prev else ""
        log.append("envelope.sent", {"agreement": agreement, "delivery": "dlv-1", "seq": seq,
                                     "rows": 10, "fields": ["id"], "digest": digest,
                                     "prev": named}, at(seq + 1))
        log.append("envelope.sent", {"agreement": "agr-1", "delivery": f"dlv-{seq + 2}",
                                     "seq": 0, "rows": 1, "fields": ["id", "x"],
                                     "digest": digest, "prev": ""}, at(seq + 1))
    log.append("envelope.sent", {"agreement": "agr-1", "delivery": "dlv-9", "seq": 0,
                                 "rows": 1, "fields": ["id"], "digest": "ab" * 32, "prev": "",
                                 "extra": 1}, at(9))
    log.checkpoint()
    log.write(folder / "provider.jsonl")
    log.write_card(folder / "provider.card")
    for name in ("consumer.jsonl", "consumer.card"):
        (folder / name).unlink()


CORPUS: dict[str, Callable[[Path], None]] = {
    "a clean story": lambda folder: None,
    "an envelope deleted": _edit(_nth_envelope(3), _delete),
    "the first entry deleted": _edit(_nth_entry(0), _delete),
    "two entries swapped": _edit(_nth_entry(5), _swap),
    "an envelope duplicated": _edit(_nth_envelope(2), _duplicate),
    "an envelope altered": _edit(_nth_envelope(4), _alter),
    "an entry altered": _edit(_nth_entry(1), _alter),
    "a body with a space": _edit(_nth_entry(2), _space),
    "an entry of another node": _edit(_nth_entry(3), _foreign),
    "a line that is not JSON": _edit(_nth_entry(6), _garbage),
    "the last entry altered": _edit(lambda lines: len(lines) - 2, _alter),
    "the last line cut off": _cut_off,
    "lines after the end record": _after_end,
    "no end record": _no_end,
    "envelopes that misbehave": _misbehaving_envelopes,
}
CHUNKINGS = {
    "a line a chunk": {"workers": 0, "chunk_bytes": 1},
    "a few lines a chunk": {"workers": 0, "chunk_bytes": 1500},
    "one chunk": {"workers": 0},
    "two workers, a line a chunk": {"workers": 2, "chunk_bytes": 1},
    "two workers, a few lines a chunk": {"workers": 2, "chunk_bytes": 3000},
}


def _run(folder: Path, **how: int | None) -> Verification:
    logs = sorted(folder.glob("*.jsonl"))
    return verify(logs, sorted(folder.glob("*.card")), **how)  # type: ignore[arg-type]


@pytest.mark.parametrize("damage", list(CORPUS.values()), ids=list(CORPUS))
def test_chunks_and_workers_find_what_entry_by_entry_finds(
        tmp_path: Path, damage: Callable[[Path], None]) -> None:
    _story(tmp_path, _lifecycle)
    damage(tmp_path)
    reference = _run(tmp_path, chunk_bytes=None)
    for name, how in CHUNKINGS.items():
        assert _run(tmp_path, **how) == reference, name


def test_every_chunk_size_finds_the_same(tmp_path: Path) -> None:
    """Chunk boundaries at every offset into a line, in a log with a damaged entry."""
    _story(tmp_path, _lifecycle)
    _edit(_nth_envelope(4), _delete)(tmp_path)
    reference = _run(tmp_path, chunk_bytes=None)
    longest = max(len(line) for line in (tmp_path / "provider.jsonl").read_bytes().split(b"\n"))
    for size in range(1, 2 * longest, 97):
        assert _run(tmp_path, workers=0, chunk_bytes=size) == reference, size


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_damage_to_an_entry_line_is_found_alike(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        _story(folder, _lifecycle)
        path = folder / "provider.jsonl"
        lines = path.read_bytes().split(b"\n")[:-1]
        i = data.draw(st.integers(first_entry_line(lines), len(lines) - 2), label="line")
        line = lines[i]
        at_byte = data.draw(st.integers(0, len(line) - 1), label="byte")
        edit = data.draw(st.sampled_from(["replace", "delete", "insert"]), label="edit")
        byte = data.draw(st.sampled_from(list(b'"\\{}[],:0aA \x00\x7f\xff')), label="with")
        lines[i] = line[:at_byte] + (b"" if edit == "delete" else bytes([byte])) \
            + line[at_byte + (edit != "insert"):]
        path.write_bytes(b"\n".join(lines) + b"\n")
        reference = _run(folder, chunk_bytes=None)
        for size in (1, 700):
            assert _run(folder, workers=0, chunk_bytes=size) == reference


# --- worker processes --------------------------------------------------------------------------

def _chunks(path: Path, workers: int, kill_after: int | None = None) -> list[Chunk]:
    head = read_head(path, str(path))
    found = []
    with open(path, "rb") as f:
        spans = entry_spans(f.fileno(), head.entries_offset, 800)
        for chunk in scan_chunks(f.fileno(), spans, head.node_id.encode(), workers):
            found.append(chunk)
            if len(found) == kill_after:
                for child in multiprocessing.active_children():
                    os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
    return found


def test_workers_give_the_chunks_this_process_would(tmp_path: Path) -> None:
    logs, _ = _story(tmp_path, _lifecycle)
    assert _chunks(logs[0], 2) == _chunks(logs[0], 0)


def test_when_the_workers_die_this_process_does_the_rest(tmp_path: Path) -> None:
    logs, _ = _story(tmp_path, _lifecycle)
    alone = _chunks(logs[0], 0)
    assert len(alone) > 4
    assert _chunks(logs[0], 2, kill_after=1) == alone


def test_small_exports_and_threaded_callers_get_no_workers() -> None:
    assert default_workers(POOL_BYTES - 1) == 0
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert default_workers(100 * POOL_BYTES) == 0
    finally:
        stop.set()
        other.join()
