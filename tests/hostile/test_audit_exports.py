"""Audit exports an auditor is given: mutated, garbage, or written by a node that lies.

``audit verify`` must never crash on an export: a file that is no export at all is refused
as bad input (exit 2, one line), anything else gives findings (exit 4) or a clean result.
Two kinds of hostile export: bytes changed after the fact (the signatures then fail), and
exports a misbehaving node signed itself, whose entry bodies hold values of the wrong type
or shape (every signature holds; only the content can be judged).
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from node.audit_format import AuditEntry
from node.auditor.facts import FACT_KINDS
from node.auditor.report import render
from node.auditor.verify import Verification, verify
from node.cli.main import main
from node.errors import MalformedFile, MalformedMessage, TrustspaceError, UsageError
from tests.hostile.strategies import examples, hostile_text, json_values, mutations, outcome
from tests.unit.auditor.crafted import CraftedLog
from tests.unit.auditor.stories import Story

EXAMPLES = examples(100)


@dataclass(frozen=True)
class Told:
    """A story's two exports and cards, as files, and the entries each log holds."""

    folder: Path
    logs: list[Path]
    cards: list[Path]
    story: Story

    def lines(self, which: int) -> list[bytes]:
        return self.logs[which].read_bytes().split(b"\n")[:-1]


def _tell(folder: Path) -> Told:
    story = Story()
    story.agree(10)
    first = story.deliver(20)
    story.read(30, first)
    second = story.deliver(40, envelopes=3)
    story.destroy(50, [first, second])
    story.revoke(60)
    story.finish(100)
    logs, cards = story.write(folder)
    return Told(folder, logs, cards, story)


@pytest.fixture(scope="module")
def told(tmp_path_factory: pytest.TempPathFactory) -> Told:
    return _tell(tmp_path_factory.mktemp("exports"))


def test_the_untouched_story_verifies_clean(told: Told) -> None:
    assert verify(told.logs, told.cards).clean


def _verified(logs: list[Path], cards: list[Path]) -> Verification | TrustspaceError:
    """verify(), and the report drawn from it: findings or a refusal, never a crash."""
    result = outcome(verify, logs, cards)
    if isinstance(result, TrustspaceError):
        assert isinstance(result, (MalformedFile, UsageError)), result
        return result
    assert "<html" in render(result).lower()
    return result


# ---- bytes changed after export ---------------------------------------------------------------
LINES = [b"", b"{", b"[]", b"null", b"\xff\xfe", b"[" * 50_000, b'{"body":' + b"[" * 50_000,
         b'{"type":"checkpoint","note":"o\\n\\u00b2\\nAAAA\\n\\n\\u2014 x AAAA\\n"}',
         b'{"type":"peer_checkpoint","peer":"n","note":"x","proof_from":1,"proof":["00"]}',
         b'{"type":"end","entries":' + b"9" * 5000 + b"}", b'{"entries":-1,"type":"end"}']


@st.composite
def changed_exports(draw: st.DrawFn, lines: list[bytes]) -> list[bytes]:
    lines = list(lines)
    at = draw(st.integers(0, len(lines) - 1))
    action = draw(st.sampled_from(["byte", "line", "insert", "remove", "swap", "repeat"]))
    if action == "byte":
        line = lines[at]
        i = draw(st.integers(0, max(len(line) - 1, 0)))
        lines[at] = line[:i] + draw(st.binary(min_size=1, max_size=3)) + line[i + 1:]
    elif action == "line":
        lines[at] = draw(st.one_of(st.sampled_from(LINES), st.binary(max_size=40)))
    elif action == "insert":
        lines.insert(at, draw(st.one_of(st.sampled_from(LINES), st.binary(max_size=40))))
    elif action == "remove":
        del lines[at]
    elif action == "swap":
        other = draw(st.integers(0, len(lines) - 1))
        lines[at], lines[other] = lines[other], lines[at]
    else:
        lines.insert(at, lines[at])
    return lines


@EXAMPLES
@given(which=st.sampled_from([0, 1]), data=st.data())
def test_an_export_changed_after_the_fact_gives_findings_or_a_refusal(
        told: Told, tmp_path_factory: pytest.TempPathFactory, which: int,
        data: st.DataObject) -> None:
    lines = data.draw(changed_exports(told.lines(which)))
    folder = tmp_path_factory.mktemp("changed")
    logs = list(told.logs)
    logs[which] = folder / told.logs[which].name
    logs[which].write_bytes(b"\n".join(lines) + b"\n")
    result = _verified(logs, told.cards)
    if isinstance(result, Verification) and _entries_of(lines) != _entries_of(told.lines(which)):
        assert result.findings, "an entry changed, and verify found nothing"


def _entries_of(lines: list[bytes]) -> list[bytes]:
    """The entry lines, in order: the part of an export that is tamper-evident. (Checkpoint
    records may be reordered or repeated without changing what they prove.)"""
    return [line for line in lines if line.startswith(b'{"body":')]


@EXAMPLES
@given(content=st.one_of(st.binary(max_size=200), st.sampled_from(LINES),
                         json_values.map(lambda v: json.dumps(v).encode())))
def test_a_file_that_is_no_export_is_refused(told: Told,
                                             tmp_path_factory: pytest.TempPathFactory,
                                             content: bytes) -> None:
    path = tmp_path_factory.mktemp("garbage") / "export.jsonl"
    path.write_bytes(content)
    result = _verified([path, told.logs[1]], told.cards)
    assert isinstance(result, (MalformedFile, UsageError, Verification))


def test_regression_export_line_nested_deeply(told: Told, tmp_path: Path) -> None:
    """json.loads raised RecursionError out of the export reader (it caught ValueError)."""
    for name, lines in {"header": [b"[" * 100_000] + told.lines(0)[1:],
                        "record": told.lines(0)[:1] + [b"{" + b"[" * 100_000]
                        + told.lines(0)[1:]}.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        result = outcome(verify, [path], told.cards)
        if name == "header":
            assert isinstance(result, MalformedFile)
        else:
            assert isinstance(result, Verification) and any(
                f.rule == "export.malformed" for f in result.findings)


def test_regression_auditor_note_size_superscript_digit(told: Told, tmp_path: Path) -> None:
    """A checkpoint note whose size line is '²' passed str.isdigit() and int() raised
    ValueError before any signature was checked."""
    lines = told.lines(0)
    note = "trustspace/x\n\u00b2\nAAAA\n\n\u2014 x AAAA\n"
    lines.insert(1, json.dumps({"type": "checkpoint", "note": note}).encode())
    path = tmp_path / "provider.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = outcome(verify, [path, told.logs[1]], told.cards)
    assert isinstance(result, Verification)
    assert any(f.rule == "checkpoint.malformed" for f in result.findings)


# ---- exports a lying node signed itself ---------------------------------------------------------
def relog(original: CraftedLog, entries: list[tuple[str, dict[str, Any], int]]) -> CraftedLog:
    """A log of ``original``'s node (same keys and card) holding ``entries``, checkpointed."""
    log = CraftedLog(original.card.name, original.card.domain)
    log.keys, log.node_id = original.keys, original.node_id
    log.card, log.signed_card = original.card, original.signed_card
    for kind, body, time in entries:
        log.append(kind, body, time)
    return log


def _entries(log: CraftedLog) -> list[tuple[str, dict[str, Any], int]]:
    decoded = [AuditEntry.decode(data) for data in log.entries]
    return [(e.kind, e.body, e.time) for e in decoded]


@EXAMPLES
@given(which=st.sampled_from(["provider", "consumer"]), data=st.data())
def test_an_export_whose_node_lies_in_its_entries_gives_findings(
        told: Told, tmp_path_factory: pytest.TempPathFactory, which: str,
        data: st.DataObject) -> None:
    original: CraftedLog = getattr(told.story, which)
    entries = _entries(original)
    facts = [i for i, (kind, _, _) in enumerate(entries) if kind in FACT_KINDS] or [0]
    at = data.draw(st.one_of(st.sampled_from(facts), st.integers(0, len(entries) - 1)))
    kind, body, time = entries[at]
    if data.draw(st.integers(0, 9)) == 0:
        kind = data.draw(st.one_of(st.sampled_from(sorted(FACT_KINDS)), hostile_text))
    else:
        body = data.draw(mutations(body))
    entries[at] = (kind, body, data.draw(st.sampled_from([time, time, -1, 0, 2**62])))
    try:
        liar = relog(original, entries)
    except MalformedMessage:
        assume(False)  # a lone surrogate: no node can write it as canonical JSON
        raise
    folder = tmp_path_factory.mktemp("liar")
    logs = list(told.logs)
    index = 0 if which == "provider" else 1
    logs[index] = liar.write(folder / told.logs[index].name)
    _verified(logs, told.cards)  # (a header time of -1 is refused as no export at all)


def _liar_with(told: Told, folder: Path, which: str, kind: str,
               change: Any) -> list[Path]:
    """Both exports, ``which`` rewritten with ``change`` applied to its first ``kind`` entry."""
    original: CraftedLog = getattr(told.story, which)
    entries = _entries(original)
    at = next(i for i, (k, _, _) in enumerate(entries) if k == kind)
    entries[at] = change(*entries[at])
    index = 0 if which == "provider" else 1
    logs = list(told.logs)
    logs[index] = relog(original, entries).write(folder / told.logs[index].name)
    return logs


def test_regression_entry_time_beyond_year_9999(told: Told, tmp_path: Path) -> None:
    """datetime refuses such a time with ValueError: the step-4 timeline and the HTML
    report crashed on an export whose node dated an entry in the year 146 million."""
    logs = _liar_with(told, tmp_path, "provider", "agreement.proposed",
                      lambda kind, body, time: (kind, body, 2**62))
    result = verify(logs, told.cards)
    assert "unix time 4611686018427387904 ms" in render(result)


def test_regression_receipt_hash_that_is_a_list(told: Told, tmp_path: Path) -> None:
    """A set of receipt hashes was built from entry bodies: a list there is unhashable, and
    TypeError ended the verification."""
    logs = _liar_with(told, tmp_path, "consumer", "receipt.acknowledged",
                      lambda kind, body, time: (kind, {**body, "receipt_hash": []}, time))
    assert isinstance(verify(logs, told.cards), Verification)


def test_regression_envelope_entry_with_bytes_that_are_not_utf8(told: Told,
                                                                tmp_path: Path) -> None:
    """The fast pattern for envelope entries takes any bytes inside an id; decoding them
    raised NotCanonical (a ValueError) out of the pass over the log."""
    lines = told.lines(0)
    at = next(i for i, line in enumerate(lines) if b'"kind":"envelope.sent"' in line)
    lines[at] = lines[at].replace(b'"agreement":"agr', b'"agreement":"\x80gr', 1)
    path = tmp_path / "provider.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = verify([path, told.logs[1]], told.cards)
    assert any(f.rule == "entry.malformed" and "not valid UTF-8" in f.message
               for f in result.findings)


# ---- the command ------------------------------------------------------------------------------
def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@examples(40)
@given(which=st.sampled_from([0, 1]), data=st.data())
def test_audit_verify_exits_by_its_findings_or_refuses_in_one_line(
        told: Told, tmp_path_factory: pytest.TempPathFactory, which: int,
        data: st.DataObject) -> None:
    lines = data.draw(st.one_of(changed_exports(told.lines(which)),
                                st.sampled_from(LINES).map(lambda line: [line])))
    folder = tmp_path_factory.mktemp("cli")
    logs = [str(p) for p in told.logs]
    logs[which] = str(folder / "export.jsonl")
    Path(logs[which]).write_bytes(b"\n".join(lines) + b"\n")
    cards = [a for c in told.cards for a in ("--card", str(c))]

    code, out, err = _run("audit", "verify", *logs, *cards)

    assert code in (0, 2, 4), (code, err)
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("error: "), err
    else:
        assert err == "" and out.rstrip().endswith(("clean", "finding", "findings"))


GARBAGE_CARDS = {
    "a card nested deeply": b"[" * 100_000,
    "a card that is a list": b"[1, 2]",
    "a card that is not UTF-8": b"\xff",
}


@pytest.mark.parametrize("content", list(GARBAGE_CARDS.values()), ids=list(GARBAGE_CARDS))
def test_audit_verify_refuses_a_garbage_card_in_one_line(told: Told, tmp_path: Path,
                                                         content: bytes) -> None:
    card = tmp_path / "card.json"
    card.write_bytes(content)
    code, _, err = _run("audit", "verify", *map(str, told.logs), "--card", str(card))
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
