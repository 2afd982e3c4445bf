"""``audit export``: the documented layout, entries byte for byte, ending attested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.audit_export import ENTRY_PREFIX, FORMAT, VERSION, export_log
from node.config import Config
from node.errors import BadInput
from node.home import Home
from node.identity import SignedCard
from node.signednote import Checkpoint, open_note


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home.init(tmp_path / "home", Config(name="alpha", domain="finance.qingdao",
                                               listen="127.0.0.1:7001"))
    for number in range(5):
        home.record("node.started", {"address": f"127.0.0.1:{7100 + number}"})
    return home


def _lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def test_the_export_has_header_checkpoints_entries_and_end_in_order(home: Home,
                                                                    tmp_path: Path) -> None:
    summary = export_log(home, tmp_path / "out.jsonl")
    lines = _lines(tmp_path / "out.jsonl")
    header = json.loads(lines[0])
    assert (header["type"], header["format"], header["version"], header["node"],
            header["origin"]) == ("header", FORMAT, VERSION, home.node_id,
                                  f"trustspace/{home.node_id}")
    assert SignedCard.from_json(json.dumps(header["card"])).card == home.card()
    kinds = [json.loads(line).get("type", "entry") for line in lines]
    entries = [i for i, kind in enumerate(kinds) if kind == "entry"]
    assert kinds[1:entries[0]] == ["checkpoint"] * summary.checkpoints
    assert kinds[-1] == "end" and json.loads(lines[-1])["entries"] == summary.entries
    assert entries == list(range(entries[0], len(lines) - 1))
    assert all(lines[i].startswith(ENTRY_PREFIX) for i in entries)


def test_entries_are_the_stored_bytes_and_the_last_checkpoint_covers_them(
        home: Home, tmp_path: Path) -> None:
    export_log(home, tmp_path / "out.jsonl")
    lines = _lines(tmp_path / "out.jsonl")
    stored = [bytes(row[0]) for row in home.conn.execute(
        "SELECT entry FROM audit_entries ORDER BY seq")]
    entries = [line for line in lines if line.startswith(ENTRY_PREFIX)]
    assert entries == stored
    assert json.loads(entries[-1])["kind"] == "audit.exported"
    notes = [json.loads(line)["note"] for line in lines if b'"type":"checkpoint"' in line]
    opened = open_note(notes[-1], {home.node_id: home.keys.signing.verify_key})
    assert Checkpoint.parse(opened.text).size == len(entries)


def test_exporting_again_replaces_the_file_and_leaves_no_temporary(home: Home,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    first = export_log(home, out)
    second = export_log(home, out)
    assert second.entries == first.entries + 1  # each export is an event of its own
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out.jsonl"]


REFUSED = {
    "a folder": lambda tmp: tmp,
    "a file in a folder that does not exist": lambda tmp: tmp / "missing" / "out.jsonl",
}


@pytest.mark.parametrize("where", REFUSED.values(), ids=REFUSED.keys())
def test_an_export_to_an_impossible_place_is_refused_and_changes_nothing(
        home: Home, tmp_path: Path, where: object) -> None:
    before = home.audit.size()
    with pytest.raises(BadInput):
        export_log(home, where(tmp_path))  # type: ignore[operator]
    assert home.audit.size() == before
