"""What the auditor reports: one finding per broken rule, naming the log, the entry and the rule.

Every rule the auditor checks is listed once in :data:`RULES` with the verification step it
belongs to (issue 5, point 4) and one sentence saying what it requires. A finding can only
name a listed rule, so the documentation, the report and the ``--json`` output always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STEPS = {
    1: "entries against the log's signed checkpoints",
    2: "consistency between all checkpoints of a log",
    3: "cosignatures",
    4: "agreements across the logs",
}

RULES: dict[str, tuple[int, str]] = {
    # step 1: each log's entries against its signed checkpoints
    "export.malformed": (1, "every line of an export follows docs/audit-export.md"),
    "card.missing": (1, "every log belongs to a node whose card the auditor was given"),
    "entry.malformed": (1, "every entry is the canonical encoding of an audit entry"),
    "entry.seq": (1, "entries are numbered 0, 1, 2, ... in file order, without gaps"),
    "entry.node": (1, "every entry names the node whose log it is"),
    "entry.chain": (1, "every entry names the hash of the entry before it"),
    "entry.altered": (1, "every entry hashes to what its successor and the checkpoint pin"),
    "entry.unattested": (1, "every entry is covered by a checkpoint signed by the node"),
    "checkpoint.malformed": (1, "every checkpoint is a C2SP checkpoint of the node's origin"),
    "checkpoint.signature": (1, "every checkpoint of a log is signed by that node's key"),
    "checkpoint.root": (1, "every checkpoint's root is the Merkle root of the entries"),
    "checkpoint.truncated": (1, "no checkpoint signed by the node covers more entries than "
                                "the log holds"),
    # step 2: consistency between all checkpoints of a log
    "checkpoint.fork": (2, "all checkpoints a node signed, wherever they are held, describe "
                           "one append-only log"),
    "consistency.proof": (2, "every held counterparty checkpoint was accepted with a valid "
                             "consistency proof from the one held before"),
    "checkpoint.refused": (2, "no node had to refuse a counterparty's checkpoint"),
    # step 3: cosignatures
    "cosignature.unverifiable": (3, "every cosigner is a node whose card the auditor was given"),
    "cosignature.invalid": (3, "every cosigned checkpoint carries a valid signature of the "
                               "cosigner"),
    "cosignature.unrecorded": (3, "every cosignature a node gave is recorded in its log as "
                                  "checkpoint.cosigned, and every such entry has its checkpoint"),
    # step 4: per agreement, across the logs
    "event.malformed": (4, "every event body has the fields docs/audit-events.md gives it"),
    "agreement.signatures": (4, "the agreement is signed by both nodes, as their cards say"),
    "agreement.mismatch": (4, "both logs hold the same agreement document"),
    "agreement.unsigned": (4, "nothing happens under an agreement that is not signed by both "
                              "nodes"),
    "agreement.log-missing": (4, "the auditor was given the logs of both parties"),
    "delivery.document": (4, "delivery start and end documents are signed by the provider "
                             "and match their entries"),
    "delivery.lifetime": (4, "deliveries start within the agreement's lifetime"),
    "delivery.frequency": (4, "at most max_deliveries deliveries start in any period"),
    "delivery.revoked": (4, "nothing is delivered after the agreement was revoked"),
    "delivery.fields": (4, "deliveries and reads carry only the agreed fields"),
    "delivery.totals": (4, "a completed delivery's envelopes, rows and last digest are those "
                           "recorded"),
    "delivery.unknown": (4, "every delivery with envelopes was started in the provider's "
                            "log"),
    "envelope.chain": (4, "each delivery's envelopes are numbered in order and chained by "
                          "digest"),
    "envelope.unreceived": (4, "every envelope the provider sent was received"),
    "envelope.unsent": (4, "every envelope the consumer received was sent by the provider"),
    "envelope.mismatch": (4, "sent and received envelopes have the same digest, rows and "
                             "fields"),
    "read.app": (4, "only the agreed application reads"),
    "read.max_reads": (4, "no delivery is read more than max_reads times"),
    "read.invalid": (4, "reads are of received deliveries that were not destroyed or revoked"),
    "destruction.overdue": (4, "every delivery is destroyed by its deadline (retention, "
                               "revocation or max_reads)"),
    "destruction.late": (4, "destruction happened within the grace period after the deadline"),
    "receipt.invalid": (4, "every destruction receipt is signed by the consumer and lists "
                           "what was destroyed"),
    "receipt.missing": (4, "the provider holds the receipt of every destruction"),
    "receipt.unmatched": (4, "every receipt the provider holds matches a destruction in the "
                             "consumer's log"),
    "revocation.document": (4, "revocations are signed by the provider and name the agreement"),
}


@dataclass(frozen=True)
class Finding:
    """One broken rule: in which log, at which entry (position in the log), and why."""

    log: str
    entry: int | None
    rule: str
    message: str
    agreement: str | None = None

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown audit rule {self.rule!r}")

    @property
    def step(self) -> int:
        return RULES[self.rule][0]

    def sort_key(self) -> tuple[int, str, int]:
        return (self.step, self.log, -1 if self.entry is None else self.entry)

    def where(self) -> str:
        return self.log if self.entry is None else f"{self.log} entry {self.entry}"

    def line(self) -> str:
        return f"{self.where()}: [{self.rule}] {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"log": self.log, "entry": self.entry, "rule": self.rule, "step": self.step,
                "message": self.message, "agreement": self.agreement}


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``1 finding``, ``2 findings``: for the sentences the CLI and the report print."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
