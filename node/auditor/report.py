"""The auditor's report: one self-contained HTML page (no network, no external assets).

It introduces the nodes and their domains, lists the findings by verification step, and
tells each agreement's story as a timeline (agreed, deliveries, reads, destruction and
receipt) with each finding shown at the entry it concerns. Every value from a log is
escaped; the page carries its own style and no script.
"""

from __future__ import annotations

import datetime
import html
import os
from collections.abc import Sequence
from pathlib import Path

from node.auditor.agreements import AgreementView, TimelineItem
from node.auditor.findings import RULES, STEPS, Finding, count
from node.auditor.verify import LogSummary, Verification
from node.errors import BadInput
from policies.durations import format_duration

_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:72em;
color:#1d232a;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:2em;border-bottom:2px solid #dde3ea}
h3{margin-bottom:.3em}table{border-collapse:collapse;width:100%;margin:.6em 0 1.2em}
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #e4e8ee;vertical-align:top}
th{background:#f3f6f9;font-weight:600}code{font-size:.92em;word-break:break-all}
.verdict{padding:.8em 1em;border-radius:6px;font-weight:600;margin:1em 0}
.clean{background:#e5f6ea;color:#135c2b}.dirty{background:#fde8e8;color:#8a1c1c}
tr.flagged td{background:#fff4f2}.finding{color:#9b1c1c;font-size:.93em;margin-top:.2em}
.rule{font-family:ui-monospace,monospace;background:#f6e0e0;border-radius:3px;padding:0 .3em}
.muted{color:#66707c}.agreement{border:1px solid #dde3ea;border-radius:8px;padding:.2em 1em;
margin:1.2em 0}.ok{color:#135c2b}
"""


def write_report(verification: Verification, path: Path) -> None:
    """Write the report to ``path`` (through a temporary file, renamed when complete)."""
    if path.is_dir() or not path.parent.is_dir():
        raise BadInput(f"cannot write the report to {path}: give a file in an existing folder")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(render(verification), "utf-8")
    os.replace(tmp, path)


def render(v: Verification) -> str:
    names = {log.node_id: log.name or log.node_id for log in v.logs}
    names.update({log.label: log.name or log.node_id for log in v.logs})
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>trustspace audit report</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>Audit report</h1>",
             f'<p class="muted">Generated {_when(_now_ms())} by trustspace audit, offline, '
             f"from {count(len(v.logs), 'exported log')} "
             f"({count(v.entries, 'entry', 'entries')}), trusting only the node cards given. "
             f"Grace period for destruction deadlines: {v.grace_s:g} s.</p>"]
    if v.clean:
        parts.append('<div class="verdict clean">No findings: every log is intact and every '
                     "agreement was kept.</div>")
    else:
        parts.append(f'<div class="verdict dirty">{count(len(v.findings), "finding")}.</div>')
    parts += _nodes(v.logs)
    parts += _findings(v.findings)
    parts.append(f"<h2>Agreements ({len(v.agreements)})</h2>")
    if not v.agreements:
        parts.append('<p class="muted">The logs record no agreement.</p>')
    for agreement in v.agreements:
        parts += _agreement(agreement, names)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _nodes(logs: Sequence[LogSummary]) -> list[str]:
    rows = []
    for log in logs:
        card = "given" if log.trusted else "<strong>not given</strong>"
        rows.append(_row(_e(log.name or "?"), _e(log.domain or "?"), f"<code>{_e(log.node_id)}"
                         "</code>", _e(log.label), str(log.entries),
                         f"{log.attested} of {log.entries}", card,
                         f"{_when(log.first_time)} – {_when(log.last_time)}"))
    return ["<h2>Nodes</h2>", "<table>",
            _row("Node", "Domain", "Node id", "Log", "Entries", "Attested", "Card",
                 "Period", header=True), *rows, "</table>"]


def _findings(findings: Sequence[Finding]) -> list[str]:
    parts = ["<h2>Findings by step</h2>"]
    for step, title in STEPS.items():
        mine = [f for f in findings if f.step == step]
        status = count(len(mine), "finding") if mine else '<span class="ok">passed</span>'
        parts.append(f"<h3>Step {step}: {_e(title)} — {status}</h3>")
        if mine:
            parts.append("<table>")
            parts.append(_row("Log", "Entry", "Rule", "Finding", header=True))
            parts += [_row(_e(f.log), "–" if f.entry is None else str(f.entry),
                           f'<span class="rule" title="{_e(RULES[f.rule][1])}">{_e(f.rule)}'
                           "</span>", _e(f.message)) for f in mine]
            parts.append("</table>")
    return parts


def _agreement(a: AgreementView, names: dict[str, str]) -> list[str]:
    provider = names.get(a.provider or "", a.provider or "?")
    consumer = names.get(a.consumer or "", a.consumer or "?")
    verdict = (f'<span class="rule">{count(len(a.findings), "finding")}</span>' if a.findings
               else '<span class="ok">kept</span>')
    parts = ['<div class="agreement">', f"<h3>Agreement <code>{_e(a.agreement_id)}</code> — "
             f"{verdict}</h3>",
             f"<p>Provider <strong>{_e(provider)}</strong>, consumer <strong>{_e(consumer)}"
             f"</strong>; valid {_when(a.created_at)} – {_when(a.expires_at)}.</p>"]
    if a.terms is not None:
        terms = a.terms
        fields = ", ".join(f"{name} ({transform})" for name, transform in terms["fields"])
        parts += ["<table>", _row("Purpose", "Application", "Fields", "Deliveries", "Retention",
                                  "Max reads", header=True),
                  _row(_e(str(terms["purpose"])), _e(str(terms["app"])), _e(fields),
                       f"{terms['max_deliveries']} per {_duration(terms['period'])}",
                       _duration(terms["retention"]), str(terms["max_reads"])), "</table>"]
    placed: set[int] = set()
    rows = []
    for item in a.timeline:
        here = [i for i, f in enumerate(a.findings) if i not in placed and _at(f, item)]
        placed.update(here)
        notes = "".join(f'<div class="finding"><span class="rule">{_e(a.findings[i].rule)}'
                        f"</span> {_e(a.findings[i].message)}</div>" for i in here)
        rows.append(_row(_when(item.time), _e(names.get(item.log, item.log)), _entries(item),
                         _e(item.kind),
                         _e(item.text) + notes, flagged=bool(here)))
    parts += ["<table>", _row("Time", "Node", "Entry", "Event", "What happened", header=True),
              *rows, "</table>"]
    rest = [f for i, f in enumerate(a.findings) if i not in placed]
    if rest:
        parts.append("<p><strong>Other findings of this agreement</strong></p><ul>")
        parts += [f'<li><span class="rule">{_e(f.rule)}</span> {_e(f.where())}: '
                  f"{_e(f.message)}</li>" for f in rest]
        parts.append("</ul>")
    parts.append("</div>")
    return parts


def _at(finding: Finding, item: TimelineItem) -> bool:
    return finding.log == item.log and finding.entry is not None \
        and item.entry <= finding.entry <= item.last_entry


def _entries(item: TimelineItem) -> str:
    return str(item.entry) if item.entry == item.last_entry else f"{item.entry}–{item.last_entry}"


def _duration(seconds: object) -> str:
    return format_duration(seconds) if isinstance(seconds, int) and seconds > 0 else str(seconds)


def _row(*cells: str, header: bool = False, flagged: bool = False) -> str:
    tag = "th" if header else "td"
    attr = ' class="flagged"' if flagged else ""
    return f"<tr{attr}>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _when(ms: int | None) -> str:
    if ms is None:
        return "?"
    try:
        moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    except (ValueError, OverflowError, OSError):  # a time no calendar holds (year 10 000+)
        return f"unix time {ms} ms"
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _now_ms() -> int:
    return int(datetime.datetime.now(tz=datetime.UTC).timestamp() * 1000)
