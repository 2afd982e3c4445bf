"""The rule registry: every rule the auditor can report is documented, and only those."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from node.auditor.findings import RULES, STEPS, Finding, count

DOC = Path(__file__).resolve().parents[3] / "docs" / "audit-export.md"


def test_every_rule_is_documented_with_its_step() -> None:
    table = re.findall(r"^\| (\d) \| `([a-z_.-]+)` \|", DOC.read_text("utf-8"), re.MULTILINE)
    assert [(int(step), rule) for step, rule in table] == \
        [(step, rule) for rule, (step, _) in RULES.items()]
    assert set(STEPS) == {step for step, _ in RULES.values()} == {1, 2, 3, 4}


def test_a_finding_of_an_unknown_rule_is_a_bug() -> None:
    with pytest.raises(ValueError):
        Finding("log.jsonl", 3, "entry.moved", "no such rule")


CASES = {
    "an entry": (Finding("a.jsonl", 7, "entry.chain", "broken"), "a.jsonl entry 7: "
                 "[entry.chain] broken"),
    "the whole log": (Finding("a.jsonl", None, "card.missing", "no card"), "a.jsonl: "
                      "[card.missing] no card"),
}


@pytest.mark.parametrize("finding, line", CASES.values(), ids=CASES.keys())
def test_a_finding_names_log_entry_and_rule(finding: Finding, line: str) -> None:
    assert finding.line() == line
    assert finding.to_dict()["step"] == RULES[finding.rule][0]


@pytest.mark.parametrize("number, text", [(0, "0 entries"), (1, "1 entry"), (2, "2 entries")])
def test_counts_read_as_english(number: int, text: str) -> None:
    assert count(number, "entry", "entries") == text
