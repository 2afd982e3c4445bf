"""Steps 1-3 against a mutation corpus: every alteration of an export or of the database is
detected, and the finding names the entry that was altered.

The logs are real: a node's HOME is created with Home.init, entries are appended through
home.change(), the node checkpoints as its timer would, and the export is the real one.
Each case changes one thing, in the export file or in the node's database before export.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from node.audit_export import export_log
from node.audit_format import AuditEntry, leaf_hash
from node.auditor.verify import Verification, verify
from node.config import Config
from node.home import DB_FILE, Home
from node.signednote import Checkpoint, open_note, sign_note
from tests.unit.auditor.crafted import first_entry_line
from tests.unit.auditor.stories import Story

ENTRIES = 30  # entries before the export adds its own (audit.exported)
MIDDLE = 14


def make_home(tmp_path: Path) -> Home:
    """A node with ENTRIES entries, all covered by a checkpoint (as its timer would do)."""
    home = Home.init(tmp_path / "home", Config(name="alpha", domain="finance.qingdao",
                                               listen="127.0.0.1:7001"))
    for number in range(1, ENTRIES):
        home.record("node.started", {"address": f"127.0.0.1:{7000 + number}"})
    home.checkpointer.checkpoint_now()
    return home


def run(tmp_path: Path, home: Home, lines: list[bytes] | None = None) -> Verification:
    export = tmp_path / "alpha.jsonl"
    if lines is None:
        export_log(home, export)
    else:
        export.write_bytes(b"\n".join(lines) + b"\n")
    card = tmp_path / "alpha.card"
    card.write_text(home.signed_card().to_json())
    return verify([export], [card])


def exported_lines(tmp_path: Path, home: Home) -> list[bytes]:
    export = tmp_path / "original.jsonl"
    export_log(home, export)
    return export.read_bytes().rstrip(b"\n").split(b"\n")


def assert_names(result: Verification, rule: str, entry: int) -> None:
    """The first finding that names an entry names ``entry``, and one of ``rule`` does too."""
    shown = [f.line() for f in result.findings]
    named = [f for f in result.findings if f.entry is not None]
    assert named and named[0].entry == entry, shown
    assert (rule, entry) in {(f.rule, f.entry) for f in result.findings}, shown


# --- the export file -------------------------------------------------------------------------

Lines = list[bytes]


def _edit_body(k: int) -> Callable[[Lines], Lines]:
    def mutate(lines: Lines) -> Lines:
        at = first_entry_line(lines) + k
        line = lines[at]
        if b'"address":"127.0.0.1:7' in line:
            lines[at] = line.replace(b'"address":"127.0.0.1:7', b'"address":"127.0.0.1:8')
        elif b'"format":1' in line:
            lines[at] = line.replace(b'"format":1', b'"format":2')
        else:
            lines[at] = line.replace(b'"name":"alpha"', b'"name":"alphb"')
        return lines
    return mutate


def _delete(k: int) -> Callable[[Lines], Lines]:
    def mutate(lines: Lines) -> Lines:
        del lines[first_entry_line(lines) + k]
        return lines
    return mutate


def _duplicate(k: int) -> Callable[[Lines], Lines]:
    def mutate(lines: Lines) -> Lines:
        at = first_entry_line(lines) + k
        lines.insert(at + 1, lines[at])
        return lines
    return mutate


def _insert(k: int) -> Callable[[Lines], Lines]:
    """A well-formed entry with seq k that chains to entry k - 1, put before entry k."""
    def mutate(lines: Lines) -> Lines:
        at = first_entry_line(lines) + k
        before = AuditEntry.decode(lines[at - 1])
        forged = AuditEntry(k, before.time, before.node, "node.stopped", {},
                            leaf_hash(lines[at - 1]).hex())
        lines.insert(at, forged.encode())
        return lines
    return mutate


def _swap(k: int) -> Callable[[Lines], Lines]:
    def mutate(lines: Lines) -> Lines:
        at = first_entry_line(lines) + k
        lines[at], lines[at + 1] = lines[at + 1], lines[at]
        return lines
    return mutate


def _renumber(k: int) -> Callable[[Lines], Lines]:
    def mutate(lines: Lines) -> Lines:
        at = first_entry_line(lines) + k
        lines[at] = lines[at].replace(f'"seq":{k},'.encode(), f'"seq":{k + 100},'.encode())
        return lines
    return mutate


def _truncate(keep: int) -> Callable[[Lines], Lines]:
    """Cut the entries after the first ``keep``, leaving the end record as it was."""
    def mutate(lines: Lines) -> Lines:
        start = first_entry_line(lines)
        return lines[:start + keep] + lines[-1:]
    return mutate


def _resign_last_checkpoint(key: SigningKey, name: str | None) -> Callable[[Lines], Lines]:
    """The newest checkpoint, its signature replaced by one of ``key`` (under ``name``)."""
    def mutate(lines: Lines) -> Lines:
        at = max(i for i, line in enumerate(lines) if b'"type":"checkpoint"' in line)
        note = json.loads(lines[at])["note"]
        text = note.split("\n\n")[0] + "\n"
        signer = name or text.split("\n")[0].split("/")[1]
        lines[at] = _record({"type": "checkpoint", "note": sign_note(text, signer, key)})
        return lines
    return mutate


def _drop_last_checkpoint(lines: Lines) -> Lines:
    at = max(i for i, line in enumerate(lines) if b'"type":"checkpoint"' in line)
    del lines[at]
    return lines


def _record(record: dict[str, object]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


LAST = ENTRIES  # the export's last entry is its audit.exported entry

EXPORT_MUTATIONS = {
    "change a byte of the first entry": (_edit_body(0), "entry.altered", 0),
    "change a byte of a middle entry": (_edit_body(MIDDLE), "entry.altered", MIDDLE),
    "change a byte of the last entry": (_edit_body(LAST), "checkpoint.root", LAST),
    "delete an entry": (_delete(MIDDLE), "entry.seq", MIDDLE),
    "insert an entry": (_insert(MIDDLE), "entry.chain", MIDDLE),
    "duplicate an entry": (_duplicate(MIDDLE), "entry.chain", MIDDLE + 1),
    "swap two entries": (_swap(MIDDLE), "entry.seq", MIDDLE),
    "renumber an entry": (_renumber(MIDDLE), "entry.seq", MIDDLE),
    "truncate before the last checkpoint": (_truncate(20), "checkpoint.truncated", 20),
    "a checkpoint re-signed with another key":
        (_resign_last_checkpoint(SigningKey.generate(), None), "checkpoint.signature", LAST),
    "a checkpoint signed by an unknown key only":
        (_resign_last_checkpoint(SigningKey.generate(), "mallory"), "checkpoint.signature",
         LAST),
    "entries after the last checkpoint": (_drop_last_checkpoint, "entry.unattested", ENTRIES),
}


@pytest.mark.parametrize("mutate, rule, entry", EXPORT_MUTATIONS.values(),
                         ids=EXPORT_MUTATIONS.keys())
def test_an_altered_export_is_detected_naming_the_entry(tmp_path: Path,
                                                       mutate: Callable[[Lines], Lines],
                                                       rule: str, entry: int) -> None:
    home = make_home(tmp_path)
    result = run(tmp_path, home, mutate(exported_lines(tmp_path, home)))
    assert_names(result, rule, entry)


def test_an_unaltered_export_verifies_clean(tmp_path: Path) -> None:
    result = run(tmp_path, make_home(tmp_path))
    assert result.clean, [f.line() for f in result.findings]
    assert result.entries == ENTRIES + 1
    assert result.logs[0].attested == ENTRIES + 1


def test_two_checkpoints_of_one_size_with_different_roots_are_a_fork(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    lines = exported_lines(tmp_path, home)
    at = max(i for i, line in enumerate(lines) if b'"type":"checkpoint"' in line)
    note = json.loads(lines[at])["note"]
    opened = open_note(note, {home.node_id: home.keys.signing.verify_key})
    checkpoint = Checkpoint.parse(opened.text)
    other = Checkpoint(checkpoint.origin, checkpoint.size, bytes(32)).to_text()
    lines.insert(at + 1, _record({"type": "checkpoint",
                                  "note": sign_note(other, home.node_id, home.keys.signing)}))
    result = run(tmp_path, home, lines)
    rules = {(f.rule, f.entry) for f in result.findings}
    assert ("checkpoint.fork", checkpoint.size - 1) in rules
    assert ("checkpoint.root", checkpoint.size - 1) in rules
    fork = next(f for f in result.findings if f.rule == "checkpoint.fork")
    assert "line" in fork.message and str(checkpoint.size) in fork.message


# --- the database ----------------------------------------------------------------------------

def _db(home: Home) -> sqlite3.Connection:
    return sqlite3.connect(home.path / DB_FILE, isolation_level=None)


def _blob(conn: sqlite3.Connection, seq: int) -> bytes:
    return bytes(conn.execute("SELECT entry FROM audit_entries WHERE seq = ?", (seq,))
                 .fetchone()[0])


def _set_blob(seq: int, edit: Callable[[bytes], bytes], *, fix_hash: bool = False
              ) -> Callable[[sqlite3.Connection], None]:
    def mutate(conn: sqlite3.Connection) -> None:
        data = edit(_blob(conn, seq))
        if fix_hash:
            conn.execute("UPDATE audit_entries SET entry = ?, hash = ? WHERE seq = ?",
                         (data, leaf_hash(data), seq))
        else:
            conn.execute("UPDATE audit_entries SET entry = ? WHERE seq = ?", (data, seq))
    return mutate


def _port(data: bytes) -> bytes:
    if b'"address":"127.0.0.1:7' in data:
        return data.replace(b'"address":"127.0.0.1:7', b'"address":"127.0.0.1:8')
    return data.replace(b'"name":"alpha"', b'"name":"alphb"')


def _db_delete(seq: int) -> Callable[[sqlite3.Connection], None]:
    def mutate(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM audit_entries WHERE seq = ?", (seq,))
    return mutate


def _db_make_room(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute("UPDATE audit_entries SET seq = -seq - 2 WHERE seq >= ?", (seq,))
    conn.execute("UPDATE audit_entries SET seq = -seq - 1 WHERE seq < 0")


def _db_duplicate(seq: int) -> Callable[[sqlite3.Connection], None]:
    def mutate(conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT time, kind, entry, hash FROM audit_entries WHERE seq = ?",
                           (seq,)).fetchone()
        _db_make_room(conn, seq + 1)
        conn.execute("INSERT INTO audit_entries (seq, time, kind, entry, hash) "
                     "VALUES (?, ?, ?, ?, ?)", (seq + 1, *row))
    return mutate


def _db_insert(seq: int) -> Callable[[sqlite3.Connection], None]:
    def mutate(conn: sqlite3.Connection) -> None:
        before = _blob(conn, seq - 1)
        old = AuditEntry.decode(before)
        forged = AuditEntry(seq, old.time, old.node, "node.stopped", {},
                            leaf_hash(before).hex()).encode()
        _db_make_room(conn, seq)
        conn.execute("INSERT INTO audit_entries (seq, time, kind, entry, hash) "
                     "VALUES (?, ?, ?, ?, ?)", (seq, old.time, "node.stopped", forged,
                                                leaf_hash(forged)))
    return mutate


def _db_swap(seq: int) -> Callable[[sqlite3.Connection], None]:
    def mutate(conn: sqlite3.Connection) -> None:
        a, b = _blob(conn, seq), _blob(conn, seq + 1)
        conn.execute("UPDATE audit_entries SET entry = ? WHERE seq = ?", (b, seq))
        conn.execute("UPDATE audit_entries SET entry = ? WHERE seq = ?", (a, seq + 1))
    return mutate


def _db_truncate(keep: int) -> Callable[[sqlite3.Connection], None]:
    def mutate(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM audit_entries WHERE seq >= ?", (keep,))
    return mutate


def _db_resign(conn: sqlite3.Connection) -> None:
    size, note = conn.execute("SELECT size, note FROM audit_checkpoints ORDER BY size DESC "
                              "LIMIT 1").fetchone()
    text = note.split("\n\n")[0] + "\n"
    name = text.split("\n")[0].split("/")[1]
    conn.execute("UPDATE audit_checkpoints SET note = ? WHERE size = ?",
                 (sign_note(text, name, SigningKey.generate()), size))


LAST_DB = ENTRIES - 1  # the newest entry in the database before the export appends its own

DB_MUTATIONS = {
    "change a byte of the first entry": (_set_blob(0, _port), "entry.altered", 0),
    "change a byte of a middle entry": (_set_blob(MIDDLE, _port), "entry.altered", MIDDLE),
    "change a byte of the last entry": (_set_blob(LAST_DB, _port), "entry.altered", LAST_DB),
    "change an entry and its stored hash":
        (_set_blob(MIDDLE, _port, fix_hash=True), "entry.altered", MIDDLE),
    "delete an entry": (_db_delete(MIDDLE), "entry.seq", MIDDLE),
    "insert an entry": (_db_insert(MIDDLE), "entry.chain", MIDDLE),
    "duplicate an entry": (_db_duplicate(MIDDLE), "entry.chain", MIDDLE + 1),
    "swap two entries": (_db_swap(MIDDLE), "entry.seq", MIDDLE),
    "renumber an entry": (_set_blob(MIDDLE, lambda d: d.replace(
        f'"seq":{MIDDLE},'.encode(), f'"seq":{MIDDLE + 100},'.encode())), "entry.seq", MIDDLE),
    "truncate before the last checkpoint": (_db_truncate(20), "checkpoint.truncated", 21),
    "a checkpoint re-signed with another key": (_db_resign, "checkpoint.signature", LAST_DB),
}


@pytest.mark.parametrize("mutate, rule, entry", DB_MUTATIONS.values(), ids=DB_MUTATIONS.keys())
def test_an_altered_database_is_detected_naming_the_entry(
        tmp_path: Path, mutate: Callable[[sqlite3.Connection], None], rule: str,
        entry: int) -> None:
    home = make_home(tmp_path)
    home.close()
    conn = _db(home)
    mutate(conn)
    conn.close()
    home = Home.open(home.path)
    result = run(tmp_path, home)
    assert_names(result, rule, entry)


# --- held checkpoints: consistency proofs and cosignatures (crafted exchanges) ----------------

def _story(tmp_path: Path) -> tuple[Story, list[Path], list[Path]]:
    story = Story()
    story.agree(10)
    delivery = story.deliver(20)
    story.destroy(30, [delivery])
    story.finish(40)
    logs, cards = story.write(tmp_path)
    return story, logs, cards


def _held_records(lines: Lines) -> list[int]:
    return [i for i, line in enumerate(lines) if b'"type":"peer_checkpoint"' in line]


def test_a_bad_consistency_proof_is_detected_naming_the_cosigned_entry(tmp_path: Path) -> None:
    story, logs, cards = _story(tmp_path)
    lines = logs[1].read_bytes().rstrip(b"\n").split(b"\n")
    at = next(i for i in _held_records(lines) if json.loads(lines[i])["proof_from"] > 0)
    record = json.loads(lines[at])
    record["proof"][0] = "00" * 32
    lines[at] = _record(record)
    logs[1].write_bytes(b"\n".join(lines) + b"\n")
    result = verify(logs, cards)
    assert [f.rule for f in result.findings] == ["consistency.proof"]
    finding = result.findings[0]
    size = int(record["note"].split("\n")[1])
    entry = json.loads(story.consumer.entries[finding.entry or 0])
    assert (finding.log, entry["kind"], entry["body"]["size"]) == \
        (str(logs[1]), "checkpoint.cosigned", size)


def test_a_node_that_rewrites_history_after_it_was_cosigned_is_a_fork(tmp_path: Path) -> None:
    story, logs, cards = _story(tmp_path)
    # The provider rewrites entry 3 and re-signs every checkpoint with its own key.
    provider = story.provider
    forged = Story()  # a fresh log with the same key replays the provider's entries
    rewritten = forged.provider
    rewritten.keys, rewritten.node_id = provider.keys, provider.node_id
    rewritten.card, rewritten.signed_card = provider.card, provider.signed_card
    rewritten.entries.clear()
    rewritten.leaves.clear()
    rewritten.times.clear()
    rewritten.notes.clear()
    from node.merkle import CompactRange
    rewritten._range = CompactRange()
    for pos, data in enumerate(provider.entries):
        entry = AuditEntry.decode(data)
        body = {**entry.body, "address": "10.0.0.1:1"} if pos == 3 else entry.body
        rewritten.append(entry.kind, body, entry.time)
        if pos + 1 in provider.notes:
            rewritten.checkpoint()
    rewritten.cosigned, rewritten.held = provider.cosigned, provider.held
    rewritten.write(logs[0])
    result = verify(logs, cards)
    forks = [f for f in result.findings if f.rule == "checkpoint.fork"]
    assert forks and all(f.log == str(logs[0]) for f in forks)
    assert not [f for f in result.findings if f.step == 1]


def test_a_cosignature_by_another_key_is_invalid(tmp_path: Path) -> None:
    _, logs, cards = _story(tmp_path)
    lines = logs[0].read_bytes().rstrip(b"\n").split(b"\n")
    at = next(i for i, line in enumerate(lines) if b'"type":"cosigned"' in line)
    record = json.loads(lines[at])
    text, signatures = record["note"].split("\n\n")
    own = signatures.split("\n")[0]
    forged = sign_note(text + "\n", record["peer"], SigningKey.generate()).split("\n\n")[1]
    record["note"] = text + "\n\n" + own + "\n" + forged
    lines[at] = _record(record)
    logs[0].write_bytes(b"\n".join(lines) + b"\n")
    result = verify(logs, cards)
    assert "cosignature.invalid" in {f.rule for f in result.findings}


def test_a_held_checkpoint_without_its_entry_is_unrecorded(tmp_path: Path) -> None:
    _, logs, cards = _story(tmp_path)
    lines = logs[1].read_bytes().rstrip(b"\n").split(b"\n")
    del lines[_held_records(lines)[0]]
    logs[1].write_bytes(b"\n".join(lines) + b"\n")
    result = verify(logs, cards)
    unrecorded = [f for f in result.findings if f.rule == "cosignature.unrecorded"]
    assert unrecorded and unrecorded[0].log == str(logs[1])


def test_without_the_counterparty_card_cosignatures_are_unverifiable(tmp_path: Path) -> None:
    _, logs, cards = _story(tmp_path)
    result = verify(logs[:1], cards[:1])
    rules = {f.rule for f in result.findings}
    assert "cosignature.unverifiable" in rules and "agreement.log-missing" in rules
    assert not [f for f in result.findings if f.step in (1, 2)]


def test_a_log_without_a_trusted_card_is_flagged(tmp_path: Path) -> None:
    _, logs, cards = _story(tmp_path)
    result = verify(logs, cards[:1])
    missing = [f for f in result.findings if f.rule == "card.missing"]
    assert [f.log for f in missing] == [str(logs[1])]
