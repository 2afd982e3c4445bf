"""``audit report``: one self-contained page naming every agreement, findings at their
entries, every value from a log escaped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from node.auditor.report import write_report
from node.auditor.verify import Verification, verify
from node.errors import BadInput
from tests.unit.auditor.stories import Story


def _two_agreements(tmp_path: Path, *, breach: bool = False) -> Verification:
    story = Story()
    story.agree(10, agreement_id="agr-0001")
    first = story.deliver(20)
    story.read(30, first, app="marketing" if breach else None)
    story.destroy(40, [first])
    story.agree(50, agreement_id="agr-0002")
    second = story.deliver(60)
    story.destroy(70, [second])
    story.finish(100)
    logs, cards = story.write(tmp_path)
    return verify(logs, cards)


def _page(tmp_path: Path, verification: Verification) -> str:
    path = tmp_path / "report.html"
    write_report(verification, path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("report", "."))) \
        == ["report.html"]
    return path.read_text("utf-8")


def test_the_report_is_one_page_that_names_every_agreement_and_node(tmp_path: Path) -> None:
    verification = _two_agreements(tmp_path)
    assert verification.clean
    page = _page(tmp_path, verification)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for agreement in ("agr-0001", "agr-0002"):
        assert f"Agreement <code>{agreement}</code>" in page
    for name, domain in (("qingdao-data", "data.qingdao"), ("bank", "finance.qingdao")):
        assert name in page and domain in page
    assert "No findings" in page
    for event in ("agreement.signed", "delivery.started", "envelope.received", "data.read",
                  "data.destroyed", "receipt.received"):
        assert event in page


def test_the_report_uses_no_network_and_no_external_asset(tmp_path: Path) -> None:
    page = _page(tmp_path, _two_agreements(tmp_path))
    assert not re.search(r"https?://|<script|<link|<img|<iframe|\bsrc=|@import|url\(", page,
                         re.IGNORECASE)


def test_a_finding_is_shown_at_the_entry_it_concerns(tmp_path: Path) -> None:
    verification = _two_agreements(tmp_path, breach=True)
    assert [f.rule for f in verification.findings] == ["read.app"]
    page = _page(tmp_path, verification)
    row = next(r for r in page.split("<tr") if "read.app" in r and "data.read" in r)
    assert 'class="flagged"' in row and "marketing" in row
    assert "1 finding<" in page


def test_values_from_a_log_are_escaped(tmp_path: Path) -> None:
    story = Story()
    story.agree(10)
    story.provider.append("delivery.refused", {
        "agreement": "agr-0001", "reason": "<script>alert(1)</script>",
        "message": "no"}, story.provider.times[-1])
    story.finish(100)
    logs, cards = story.write(tmp_path)
    page = _page(tmp_path, verify(logs, cards))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_report_to_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        write_report(_two_agreements(tmp_path), tmp_path / "missing" / "report.html")
