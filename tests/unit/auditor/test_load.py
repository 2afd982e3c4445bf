"""Reading exports and cards strictly: what is not an export or a card is refused; a bad
line inside an export is a finding naming its line, and never hides the rest of the log."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from node.auditor.verify import verify
from node.errors import MalformedFile, UsageError
from tests.unit.auditor.crafted import CraftedLog, at, first_entry_line

Lines = list[bytes]


def _log() -> CraftedLog:
    log = CraftedLog("alpha", "finance.qingdao")
    for second in range(6):
        log.append("node.started", {"address": f"127.0.0.1:{7000 + second}"}, at(second))
    return log


def _verify(tmp_path: Path, log: CraftedLog, lines: Lines) -> list[tuple[str, int | None]]:
    path = log.write(tmp_path / "log.jsonl", lines)
    result = verify([path], [log.write_card(tmp_path / "log.card")])
    return [(f.rule, f.entry) for f in result.findings]


NOT_AN_EXPORT = {
    "an empty file": lambda lines: [b""],
    "JSON that is no header": lambda lines: [b'{"type": "note"}', *lines[1:]],
    "a header of another version": lambda lines: [
        lines[0].replace(b'"version":1', b'"version":2'), *lines[1:]],
    "a header whose origin is not the node's": lambda lines: [
        lines[0].replace(b'"origin":"trustspace/', b'"origin":"other/'), *lines[1:]],
    "not JSON at all": lambda lines: [b"\x00\x01binary", *lines[1:]],
}


@pytest.mark.parametrize("mutate", NOT_AN_EXPORT.values(), ids=NOT_AN_EXPORT.keys())
def test_a_file_that_is_not_an_export_is_refused(tmp_path: Path,
                                                 mutate: Callable[[Lines], Lines]) -> None:
    log = _log()
    with pytest.raises(MalformedFile):
        _verify(tmp_path, log, mutate(log.export_lines()))


def _replace_record(kind: bytes, new: bytes) -> Callable[[Lines], Lines]:
    def mutate(lines: Lines) -> Lines:
        at_line = next(i for i, line in enumerate(lines) if kind in line)
        lines[at_line] = new
        return lines
    return mutate


def _card_of_another_node(lines: Lines) -> Lines:
    header = json.loads(lines[0])
    header["card"] = json.loads(CraftedLog("beta", "finance.qingdao").signed_card.to_json())
    return [json.dumps(header).encode(), *lines[1:]]


BAD_LINES = {
    "a record of an unknown type": (
        _replace_record(b'"type":"checkpoint"', b'{"type":"comment","note":"x"}'),
        [("export.malformed", None), ("entry.unattested", 0)]),
    "a record with a field too many": (
        lambda lines: [lines[0], lines[1].replace(b'{"note"', b'{"extra":1,"note"'),
                       *lines[2:]],
        [("export.malformed", None), ("entry.unattested", 0)]),
    "a checkpoint that is no signed note": (
        _replace_record(b'"type":"checkpoint"', b'{"note":"hello","type":"checkpoint"}'),
        [("entry.unattested", 0), ("checkpoint.malformed", None)]),
    "the card of another node in the header": (
        _card_of_another_node, [("export.malformed", None)]),
    "no end record": (lambda lines: lines[:-1], [("export.malformed", None)]),
    "a line after the end record": (
        lambda lines: [*lines, lines[first_entry_line(lines)]],
        [("export.malformed", None), ("entry.seq", 6), ("entry.chain", 6),
         ("entry.unattested", 6)]),
    "a checkpoint record among the entries": (
        lambda lines: [*lines[:-2], lines[1], *lines[-2:]],
        [("export.malformed", None), ("entry.malformed", 5), ("entry.chain", 5),
         ("checkpoint.root", 5), ("entry.seq", 6)]),
}


@pytest.mark.parametrize("mutate, expected", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_a_bad_line_is_a_finding(tmp_path: Path, mutate: Callable[[Lines], Lines],
                                 expected: list[tuple[str, int | None]]) -> None:
    log = _log()
    found = _verify(tmp_path, log, mutate(log.export_lines()))
    assert sorted(found, key=str) == sorted(expected, key=str)


CARDS = {
    "not a card": b'{"hello": 1}',
    "a card whose signature does not verify": None,
}


@pytest.mark.parametrize("content", CARDS.values(), ids=CARDS.keys())
def test_a_card_that_does_not_verify_is_refused(tmp_path: Path, content: bytes | None) -> None:
    log = _log()
    path = log.write(tmp_path / "log.jsonl")
    card = log.write_card(tmp_path / "log.card")
    if content is None:
        card.write_text(card.read_text().replace('"alpha"', '"alphb"'))
    else:
        card.write_bytes(content)
    with pytest.raises(MalformedFile):
        verify([path], [card])


def test_two_exports_of_one_node_are_refused(tmp_path: Path) -> None:
    log = _log()
    first, second = log.write(tmp_path / "a.jsonl"), log.write(tmp_path / "b.jsonl")
    with pytest.raises(UsageError):
        verify([first, second], [log.write_card(tmp_path / "log.card")])


def test_a_missing_export_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MalformedFile):
        verify([tmp_path / "absent.jsonl"], [])
