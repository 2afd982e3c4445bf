"""The audit commands: exit 0 clean, 4 with findings, 2 for bad input; --json; help text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from node.cli.main import build_parser, main
from node.config import Config
from node.home import Home
from tests.unit.auditor.stories import Story


def _story_files(tmp_path: Path, *, breach: bool) -> tuple[list[str], list[str]]:
    story = Story()
    story.agree(10)
    delivery = story.deliver(20)
    story.read(30, delivery, app="marketing" if breach else None)
    story.destroy(40, [delivery])
    story.finish(100)
    logs, cards = story.write(tmp_path)
    return [str(p) for p in logs], [a for c in cards for a in ("--card", str(c))]


VERIFY = {
    "clean logs": (False, 0, "clean"),
    "a breach": (True, 4, "[read.app]"),
}


@pytest.mark.parametrize("breach, code, text", VERIFY.values(), ids=VERIFY.keys())
def test_verify_exits_by_its_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      breach: bool, code: int, text: str) -> None:
    logs, cards = _story_files(tmp_path, breach=breach)
    assert main(["audit", "verify", *logs, *cards]) == code
    out = capsys.readouterr().out
    assert text in out and "step 4, agreements across the logs" in out


def test_verify_json_lists_the_findings(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    logs, cards = _story_files(tmp_path, breach=True)
    assert main(["audit", "verify", *logs, *cards, "--json"]) == 4
    result = json.loads(capsys.readouterr().out)
    assert result["clean"] is False and result["agreements"] == ["agr-0001"]
    [finding] = result["findings"]
    assert set(finding) == {"log", "entry", "rule", "step", "message", "agreement"}
    assert (finding["log"], finding["rule"], finding["step"]) == (logs[1], "read.app", 4)


@pytest.mark.parametrize("breach, code", [(False, 0), (True, 4)], ids=["clean", "breach"])
def test_report_writes_the_page_and_exits_by_its_findings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], breach: bool, code: int) -> None:
    logs, cards = _story_files(tmp_path, breach=breach)
    html = tmp_path / "report.html"
    assert main(["audit", "report", *logs, *cards, "--html", str(html)]) == code
    assert "agr-0001" in html.read_text("utf-8")
    assert str(html) in capsys.readouterr().out


def test_export_writes_a_log_that_verifies(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    home = Home.init(tmp_path / "home", Config(name="alpha", domain="finance.qingdao",
                                               listen="127.0.0.1:7001"))
    (tmp_path / "alpha.card").write_text(home.signed_card().to_json())
    home.close()
    out = tmp_path / "alpha.jsonl"
    assert main(["audit", "export", str(tmp_path / "home"), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["entries"] == 2 and summary["out"] == str(out)
    assert main(["audit", "verify", str(out), "--card", str(tmp_path / "alpha.card")]) == 0


BAD_USAGE = {
    "no log": ["audit", "verify"],
    "a negative grace": ["audit", "verify", "LOG", "--grace", "-1"],
    "a card file that does not exist": ["audit", "verify", "LOG", "--card", "absent.card"],
    "a log that does not exist": ["audit", "verify", "absent.jsonl"],
    "report without --html": ["audit", "report", "LOG"],
    "export without --out": ["audit", "export", "HOME"],
    "export of a folder that is no home": ["audit", "export", "absent-home", "--out", "x"],
}


@pytest.mark.parametrize("argv", BAD_USAGE.values(), ids=BAD_USAGE.keys())
def test_bad_usage_exits_2_with_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch,
                                             argv: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    logs, _ = _story_files(tmp_path, breach=False)
    argv = [logs[0] if a == "LOG" else a for a in argv]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse refuses before any command runs
        code = int(e.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(("error:", "usage:")) and "Traceback" not in err


def test_every_audit_command_has_help_text() -> None:
    def choices(parser: Any) -> dict[str, Any]:
        return dict(parser._subparsers._group_actions[0].choices)

    commands = choices(choices(build_parser())["audit"])
    assert set(commands) == {"export", "verify", "report"}
    for name, command in commands.items():
        assert command.description, name
        for action in command._actions:
            assert action.help, f"{name} {action.dest}"
