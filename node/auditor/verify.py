"""Offline verification of audit exports, trusting only the cards the auditor gives.

:func:`verify` runs the steps of issue 5, point 4, in order:

0. read the trusted cards and the head of each export (one export per node); a log whose
   node has no trusted card is flagged, and checked against the card it carries;
1. each log's entries against its signed checkpoints: every checkpoint's signature is
   verified first, then one streaming pass recomputes every leaf hash and the Merkle root
   at every checkpointed size (``integrity.scan_log``);
2. consistency between all checkpoints of a log, wherever they are held: one size has
   one root, held checkpoints fit the node's entries, held proofs verify;
3. cosignatures: each is valid and recorded by its cosigner as ``checkpoint.cosigned``;
4. per agreement across the logs (``agreements.check_agreements``).

Nothing is trusted that the cards do not vouch for; the result lists every finding.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.signing import VerifyKey

from node.auditor import DEFAULT_GRACE_S
from node.auditor.agreements import AgreementView, check_agreements
from node.auditor.chunks import CHUNK_BYTES
from node.auditor.facts import LogFacts
from node.auditor.findings import RULES, Finding
from node.auditor.integrity import (
    Claim,
    LogScan,
    check_consistency,
    check_cosignatures,
    check_late_claims,
    cosigned_entries,
    open_claims,
    refused_claims,
    scan_log,
)
from node.auditor.load import ExportHead, load_cards, read_head
from node.errors import UsageError
from node.identity import NodeCard


@dataclass(frozen=True)
class LogSummary:
    """One verified log, as the report introduces it."""

    label: str
    node_id: str
    name: str | None
    domain: str | None
    trusted: bool
    entries: int
    checkpoints: int
    attested: int
    first_time: int | None
    last_time: int | None
    kinds: dict[str, int]


@dataclass(frozen=True)
class Verification:
    logs: tuple[LogSummary, ...]
    findings: tuple[Finding, ...]
    agreements: tuple[AgreementView, ...]
    grace_s: float

    @property
    def clean(self) -> bool:
        return not self.findings

    @property
    def entries(self) -> int:
        return sum(log.entries for log in self.logs)

    def to_dict(self) -> dict[str, Any]:
        return {"clean": self.clean, "entries": self.entries,
                "logs": [{"log": s.label, "node_id": s.node_id, "name": s.name,
                          "domain": s.domain, "trusted_card": s.trusted, "entries": s.entries,
                          "checkpoints": s.checkpoints, "attested": s.attested}
                         for s in self.logs],
                "agreements": [a.agreement_id for a in self.agreements],
                "findings": [f.to_dict() for f in self.findings]}


def verify(logs: Sequence[Path], cards: Sequence[Path], *, grace_s: float = DEFAULT_GRACE_S,
           workers: int | None = None,
           chunk_bytes: int | None = CHUNK_BYTES) -> Verification:
    """Verify the exports ``logs`` against the trusted node cards ``cards``.

    ``workers`` and ``chunk_bytes`` say how each log's entries are read (see
    ``integrity.scan_log``); they change how fast, never what is found.
    """
    if not logs:
        raise UsageError("give at least one exported log to verify")
    grace_ms = int(grace_s * 1000)
    findings: list[Finding] = []
    # 0. The trusted cards and the head of each export; one export per node.
    trusted = load_cards(cards)
    heads = [read_head(path, str(path)) for path in logs]
    _one_export_per_node(heads)
    known: dict[str, NodeCard] = dict(trusted)
    for head in heads:
        findings.extend(head.findings)
        if head.node_id not in trusted:
            carried = f" ({head.card.name}, {head.card.domain})" if head.card else ""
            findings.append(Finding(
                head.label, None, "card.missing",
                f"no card was given for node {head.node_id}{carried}: this log is checked "
                "against the card it carries, which proves nothing by itself"))
            if head.card is not None:
                known[head.node_id] = head.card
    keys = {node: VerifyKey(card.verify_key) for node, card in known.items()}
    labels = [head.label for head in heads]
    node_of = [head.node_id for head in heads]
    # 1. Every checkpoint's signatures, then each log's entries in one pass.
    claims = open_claims(heads, keys, findings)
    by_node: dict[str, list[Claim]] = defaultdict(list)
    for claim in claims:
        by_node[claim.node].append(claim)
    scans: dict[str, LogScan] = {}
    for index, head in enumerate(heads):
        scan = scans[head.node_id] = scan_log(head, index, by_node[head.node_id],
                                              workers=workers, chunk_bytes=chunk_bytes)
        findings.extend(scan.findings)
    facts: list[LogFacts] = [scans[node].facts for node in node_of]  # type: ignore[misc]
    cosigned = cosigned_entries(facts, findings)
    # 2. Consistency between all checkpoints of each log.
    findings.extend(check_consistency(scans, claims, labels, cosigned, grace_ms))
    late, refusals = refused_claims(facts, keys, labels)
    findings.extend(refusals)
    findings.extend(check_late_claims(scans, late, labels))
    # 3. Cosignatures.
    findings.extend(check_cosignatures(heads, scans, claims, labels, cosigned))
    # 4. Per agreement, across the logs.
    for log in facts:
        findings.extend(log.findings)
    agreement_findings, views = check_agreements(facts, node_of, known, grace_ms)
    findings.extend(agreement_findings)
    order = {label: i for i, label in enumerate(labels)}
    rank = {rule: i for i, rule in enumerate(RULES)}
    findings.sort(key=lambda f: (f.step, order.get(f.log, len(order)),
                                 -1 if f.entry is None else f.entry, rank[f.rule]))
    summaries = tuple(_summary(head, scans[head.node_id], known.get(head.node_id),
                               head.node_id in trusted) for head in heads)
    return Verification(summaries, tuple(findings), tuple(views), grace_s)


def _one_export_per_node(heads: Sequence[ExportHead]) -> None:
    seen: dict[str, str] = {}
    for head in heads:
        if head.node_id in seen:
            raise UsageError(f"{seen[head.node_id]} and {head.label} are both exports of node "
                             f"{head.node_id}; give one export per node (the newest)")
        seen[head.node_id] = head.label


def _summary(head: ExportHead, scan: LogScan, card: NodeCard | None,
             trusted: bool) -> LogSummary:
    facts = scan.facts
    assert facts is not None
    return LogSummary(head.label, head.node_id, card.name if card else None,
                      card.domain if card else None, trusted, scan.entries,
                      sum(1 for r in head.records if r.kind == "checkpoint"), scan.attested,
                      facts.first_time, facts.last_time if scan.entries else None,
                      dict(facts.kinds))
