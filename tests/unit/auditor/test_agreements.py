"""Step 4: per agreement, across the provider's and the consumer's logs.

Each story is told by two crafted logs (real keys and signatures, times chosen by the test)
following docs/audit-events.md. A clean story verifies with zero findings; each breach is
flagged by its rule at the entry where it happened, while steps 1-3 stay clean (the logs
are intact: the breach is in what the nodes did, not in the logs).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from node.auditor.verify import Verification, verify
from tests.unit.auditor.crafted import at
from tests.unit.auditor.stories import Story

GRACE = 60


def _verify(story: Story, tmp_path: Path, *, grace: float = GRACE) -> Verification:
    tmp_path.mkdir(exist_ok=True)
    logs, cards = story.write(tmp_path)
    return verify(logs, cards, grace_s=grace)


def _kind(story: Story, role: str, pos: int) -> str:
    log = story.provider if role == "provider" else story.consumer
    return str(json.loads(log.entries[pos])["kind"])


# --- clean stories -----------------------------------------------------------------------------

def _agreed_delivered_read_destroyed(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(20)
    s.read(30, delivery)
    s.read(40, delivery)
    s.destroy(50, [delivery])
    s.finish(100)


def _revoked_and_destroyed_on_revocation(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(20)
    s.revoke(60)
    s.destroy(62, [delivery], reason="revoked")
    s.finish(100)


def _read_out_and_destroyed(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(20)
    for t in (30, 31, 32):
        s.read(t, delivery)
    s.destroy(33, [delivery], reason="max_reads")
    s.finish(100)


def _two_deliveries_destroyed_at_retention(s: Story) -> None:
    s.agree(10)
    first = s.deliver(20)
    second = s.deliver(3000)
    s.destroy(621, [first], reason="retention")
    s.destroy(3601, [second], reason="retention")
    s.finish(4000)


def _nothing_delivered(s: Story) -> None:
    s.agree(10)
    s.finish(100)


def _proposal_never_countersigned(s: Story) -> None:
    s.agree(10, concluded=False)
    s.finish(100)


def _refusals_naming_no_agreement(s: Story) -> None:
    s.agree(10)
    s.consumer.append("data.read_refused", {"agreement": "agr-typo", "app": "scorer",
                                            "reason": "access_denied"}, at(20))
    s.provider.append("delivery.refused", {"agreement": "", "consumer": s.consumer.node_id,
                                           "reason": "contract_refused", "message": "no"},
                      at(21))
    s.finish(100)


CLEAN = {
    "agreed, delivered, read twice, destroyed on request": _agreed_delivered_read_destroyed,
    "revoked, destroyed on revocation": _revoked_and_destroyed_on_revocation,
    "read max_reads times, then destroyed": _read_out_and_destroyed,
    "two deliveries, each destroyed at its retention": _two_deliveries_destroyed_at_retention,
    "agreed, nothing delivered": _nothing_delivered,
    "proposed, never countersigned": _proposal_never_countersigned,
    "refused attempts naming agreements that do not exist": _refusals_naming_no_agreement,
}


@pytest.mark.parametrize("tell", CLEAN.values(), ids=CLEAN.keys())
def test_a_kept_agreement_verifies_with_zero_findings(tmp_path: Path,
                                                      tell: Callable[[Story], None]) -> None:
    story = Story()
    tell(story)
    result = _verify(story, tmp_path)
    assert result.clean, [f.line() for f in result.findings]
    assert [a.agreement_id for a in result.agreements] == ["agr-0001"]


# --- breaches ------------------------------------------------------------------------------------

def _never_destroyed(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(20)
    s.read(30, delivery)
    s.finish(21 + 600 + GRACE + 10)


def _read_by_another_application(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(20)
    s.read(30, delivery, app="marketing")
    s.destroy(40, [delivery])
    s.finish(100)


def _kept_past_retention(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(20)
    s.destroy(21 + 600 + GRACE + 60, [delivery], reason="retention")
    s.finish(800)


def _delivered_beyond_frequency(s: Story) -> None:
    s.agree(10)
    deliveries = [s.deliver(t) for t in (20, 30, 40)]
    s.destroy(50, deliveries)
    s.finish(100)


def _read_beyond_max_reads(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(20)
    for t in (30, 31, 32, 33):
        s.read(t, delivery)
    s.destroy(34, [delivery], reason="max_reads")
    s.finish(100)


def _kept_after_the_last_read(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(20)
    for t in (30, 31, 32):
        s.read(t, delivery)
    s.finish(32 + GRACE + 10)


def _delivered_after_revocation(s: Story) -> None:
    s.agree(10)
    s.revoke(15)
    delivery = s.deliver(20)
    s.destroy(22, [delivery], reason="revoked")
    s.finish(100)


def _kept_after_revocation(s: Story) -> None:
    s.agree(10)
    s.deliver(20)
    s.revoke(30)
    s.finish(31 + GRACE + 10)


def _delivered_after_expiry(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(10 + 86400 + 5)
    s.destroy(86500, [delivery])
    s.finish(86600)


def _envelope_altered_on_the_way(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(20, altered=1)
    s.destroy(30, [delivery])
    s.finish(100)


def _envelope_never_received(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(20, received=1)
    s.destroy(30, [delivery])
    s.finish(100)


def _envelope_never_sent(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(20, extra_received=1)
    s.destroy(30, [delivery])
    s.finish(100)


def _receipt_never_reaches_the_provider(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(20)
    s.destroy(30, [delivery], receipt_reaches_provider=False)
    s.finish(100)


def _fields_beyond_the_agreement(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(20, fields=("company_id", "revenue"))
    s.destroy(30, [delivery])
    s.finish(100)


def _agreement_without_the_consumers_signature(s: Story) -> None:
    s.agree(10, consumer_signs=False)
    s.finish(100)


def _receipt_with_other_digests(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(20)
    s.destroy(30, [delivery], digests_of="dlv-9999")
    s.finish(100)


def _read_after_destruction(s: Story) -> None:
    s.agree(10)
    delivery = s.deliver(20)
    s.destroy(30, [delivery])
    s.read(40, delivery)
    s.finish(100)


BREACHES = {
    "a consumer that never destroys": (_never_destroyed, "destruction.overdue", "consumer",
                                       "delivery.completed"),
    "data read by another application": (_read_by_another_application, "read.app", "consumer",
                                         "data.read"),
    "data kept past retention": (_kept_past_retention, "destruction.late", "consumer",
                                 "data.destroyed"),
    "a provider delivering beyond the frequency": (_delivered_beyond_frequency,
                                                   "delivery.frequency", "provider",
                                                   "delivery.started"),
    "reads beyond max_reads": (_read_beyond_max_reads, "read.max_reads", "consumer",
                               "data.read"),
    "data kept after its last permitted read": (_kept_after_the_last_read,
                                                "destruction.overdue", "consumer",
                                                "delivery.completed"),
    "a delivery after revocation": (_delivered_after_revocation, "delivery.revoked",
                                    "provider", "delivery.started"),
    "data kept after revocation": (_kept_after_revocation, "destruction.overdue", "consumer",
                                   "delivery.completed"),
    "a delivery after the agreement expired": (_delivered_after_expiry, "delivery.lifetime",
                                               "provider", "delivery.started"),
    "an envelope altered between the nodes": (_envelope_altered_on_the_way,
                                              "envelope.mismatch", "consumer",
                                              "envelope.received"),
    "an envelope sent and never received": (_envelope_never_received, "envelope.unreceived",
                                            "provider", "envelope.sent"),
    "an envelope received and never sent": (_envelope_never_sent, "envelope.unsent",
                                            "consumer", "envelope.received"),
    "a receipt that never reached the provider": (_receipt_never_reaches_the_provider,
                                                  "receipt.missing", "consumer",
                                                  "data.destroyed"),
    "fields the agreement does not grant": (_fields_beyond_the_agreement, "delivery.fields",
                                            "provider", "delivery.started"),
    "an agreement without the consumer's signature": (
        _agreement_without_the_consumers_signature, "agreement.signatures", "provider",
        "agreement.signed"),
    "a receipt listing other envelopes than were received": (
        _receipt_with_other_digests, "receipt.invalid", "consumer", "data.destroyed"),
    "a read after destruction": (_read_after_destruction, "read.invalid", "consumer",
                                 "data.read"),
}


@pytest.mark.parametrize("tell, rule, role, kind", BREACHES.values(), ids=BREACHES.keys())
def test_a_breach_is_flagged_at_its_entry(tmp_path: Path, tell: Callable[[Story], None],
                                          rule: str, role: str, kind: str) -> None:
    story = Story()
    tell(story)
    result = _verify(story, tmp_path)
    shown = [f.line() for f in result.findings]
    assert not [f for f in result.findings if f.step < 4], shown
    flagged = [f for f in result.findings if f.rule == rule]
    assert flagged, shown
    finding = flagged[0]
    assert finding.log == str(tmp_path / f"{role}.jsonl"), shown
    assert finding.entry is not None and _kind(story, role, finding.entry) == kind, shown
    assert finding.agreement == "agr-0001"


def test_the_grace_period_decides_a_late_destruction(tmp_path: Path) -> None:
    story = Story()
    story.agree(10)
    delivery = story.deliver(20)
    story.destroy(21 + 600 + 30, [delivery], reason="retention")  # 30 s late
    story.finish(800)
    assert _verify(story, tmp_path / "lenient", grace=60).clean
    strict = _verify(story, tmp_path / "strict", grace=10)
    assert [f.rule for f in strict.findings] == ["destruction.late"]


def test_a_deadline_not_yet_reached_when_the_log_ends_is_no_finding(tmp_path: Path) -> None:
    story = Story()
    story.agree(10)
    story.deliver(20)
    story.finish(21 + 600 + GRACE - 1)
    assert _verify(story, tmp_path).clean


def test_with_one_log_the_agreement_is_flagged_as_unverifiable_across(tmp_path: Path) -> None:
    story = Story()
    _agreed_delivered_read_destroyed(story)
    logs, cards = story.write(tmp_path)
    result = verify(logs[1:], cards)
    assert [(f.rule, f.log) for f in result.findings] == \
        [("agreement.log-missing", str(logs[1]))]


def test_a_malformed_event_body_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    story = Story()
    story.agree(10)
    story.consumer.append("data.read", {"agreement": "agr-0001", "delivery": 7}, at(11))
    story.finish(100)
    result = _verify(story, tmp_path)
    assert [f.rule for f in result.findings] == ["event.malformed"]
