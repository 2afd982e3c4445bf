"""Step 4 of verification: each agreement, across the provider's and the consumer's logs.

For every agreement any log mentions, in order: (a) the agreement document, signed by both
nodes as their trusted cards say, the same in both logs; (b) the provider's side: every
delivery started inside the agreement's lifetime, within its frequency, before any
revocation, with provider-signed start and end documents that match the envelopes sent;
(c) the consumer's side: envelopes received in order, reads only by the agreed
application and at most ``max_reads`` times per delivery, every delivery destroyed by its
deadline with a consumer-signed receipt listing exactly what was received; (d) across the
two logs: every envelope sent was received and vice versa with the same digest, and the
provider holds every receipt. The events and their bodies are those of
docs/audit-events.md; a body that lacks what the rule needs is itself a finding.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from node.agreements import Agreement, verify_agreement
from node.auditor.facts import MISSING, EnvelopeRun, Event, LogFacts
from node.auditor.findings import Finding
from node.documents import SignedDoc
from node.errors import TrustspaceError
from node.identity import NodeCard

AGREEMENT_KINDS = frozenset({
    "negotiation.decided", "agreement.proposed", "agreement.signed", "agreement.revoked",
    "revocation.received", "delivery.started", "delivery.refused", "delivery.completed",
    "delivery.aborted", "data.read", "data.read_refused", "data.destroyed",
    "receipt.acknowledged", "receipt.received",
})


_ACTIVITY = frozenset({
    "delivery.started", "delivery.completed", "delivery.aborted", "data.read",
    "data.destroyed", "receipt.acknowledged", "receipt.received", "agreement.revoked",
    "revocation.received",
})
"""Kinds that mean something happened under an agreement (refusals and proposals do not)."""
_REFUSALS = frozenset({"delivery.refused", "data.read_refused"})
"""Kinds that record a refused attempt, naming whatever agreement id the caller gave."""


class _Malformed(Exception):
    """An event body without a field a rule needs (becomes an ``event.malformed`` finding)."""


@dataclass(frozen=True)
class TimelineItem:
    """One step of an agreement's story, at an entry (or a run of entries) of one log."""

    time: int
    log: str
    entry: int
    last_entry: int
    kind: str
    text: str


@dataclass(frozen=True)
class AgreementView:
    """What the report shows of one agreement: who, on which terms, and what happened."""

    agreement_id: str
    provider: str | None
    consumer: str | None
    terms: dict[str, Any] | None
    created_at: int | None
    expires_at: int | None
    timeline: tuple[TimelineItem, ...]
    findings: tuple[Finding, ...]


@dataclass
class _Side:
    """One party's events and envelope runs for the agreement under check."""

    facts: LogFacts
    events: list[Event] = field(default_factory=list)
    runs: list[EnvelopeRun] = field(default_factory=list)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    @property
    def active(self) -> bool:
        """Whether anything happened under the agreement in this log (beyond negotiating)."""
        return bool(self.runs) or any(e.kind in _ACTIVITY for e in self.events)


def check_agreements(logs: Sequence[LogFacts], node_of: Sequence[str],
                     cards: Mapping[str, NodeCard],
                     grace_ms: int) -> tuple[list[Finding], list[AgreementView]]:
    """Step 4 for every agreement the logs mention; returns the findings and the views."""
    findings: list[Finding] = []
    sides: dict[str, dict[int, _Side]] = defaultdict(dict)
    first_seen: dict[str, int] = {}
    for log in logs:
        for event in log.events:
            if event.kind not in AGREEMENT_KINDS:
                continue
            agreement = event.body.get("agreement")
            if (event.kind == "negotiation.decided" and agreement is None) or (
                    event.kind in _REFUSALS and not (isinstance(agreement, str) and agreement)):
                continue
            if not isinstance(agreement, str) or not agreement:
                findings.append(Finding(log.label, event.pos, "event.malformed",
                                        f"{event.kind} must name its agreement"))
                continue
            sides[agreement].setdefault(log.index, _Side(log)).events.append(event)
            first_seen[agreement] = min(first_seen.get(agreement, event.time), event.time)
        for run in log.runs():
            sides[run.agreement].setdefault(log.index, _Side(log)).runs.append(run)
            first_seen[run.agreement] = min(first_seen.get(run.agreement, run.first_time),
                                            run.first_time)
    views = []
    for agreement_id in sorted(sides, key=lambda a: (first_seen.get(a, 0), a)):
        check = _AgreementCheck(agreement_id, sides[agreement_id], node_of, cards, grace_ms)
        view = check.run()
        findings.extend(check.findings)
        if view.terms is not None or any(s.active for s in sides[agreement_id].values()):
            views.append(view)  # not an agreement id a refused caller merely named
    return findings, views


class _AgreementCheck:
    def __init__(self, agreement_id: str, sides: dict[int, _Side], node_of: Sequence[str],
                 cards: Mapping[str, NodeCard], grace_ms: int) -> None:
        self.id = agreement_id
        self.sides = sides
        self.node_of = node_of
        self.cards = cards
        self.grace_ms = grace_ms
        self.findings: list[Finding] = []
        self.items: list[TimelineItem] = []
        self.agreement: Agreement | None = None
        self.provider: _Side | None = None
        self.consumer: _Side | None = None

    def finding(self, side: _Side, pos: int | None, rule: str, message: str) -> None:
        self.findings.append(Finding(side.facts.label, pos, rule, message, self.id))

    def guarded(self, side: _Side, event: Event, check: Callable[[], None]) -> None:
        """Run one event's check; a body without what the check needs is a finding."""
        try:
            check()
        except _Malformed as e:
            self.finding(side, event.pos, "event.malformed", f"{event.kind}: {e}")

    # --- the order of the checks ---------------------------------------------------------------

    def run(self) -> AgreementView:
        self._timeline()
        # (a) the agreement document
        if self._document():
            agreement = self.agreement
            assert agreement is not None
            # (b) the provider's side, (c) the consumer's side, (d) across the two logs
            provider = self.provider
            consumer = self.consumer
            deliveries: dict[str, Event] = {}
            receipts: dict[str, Event] = {}
            if provider is not None:
                deliveries = self._provider_deliveries(provider, agreement)
                self._provider_envelopes(provider, agreement, deliveries)
                receipts = self._provider_receipts(provider)
            if consumer is not None:
                self._consumer(consumer, agreement, deliveries, provider is not None)
            if provider is not None and consumer is not None:
                self._envelopes_across(provider, consumer)
                self._receipts_across(provider, consumer, receipts)
        agreement = self.agreement
        return AgreementView(
            self.id, agreement.provider if agreement else None,
            agreement.consumer if agreement else None,
            agreement.terms.to_dict() if agreement else None,
            agreement.created_at if agreement else None,
            agreement.expires_at if agreement else None,
            tuple(sorted(self.items, key=lambda i: (i.time, i.log, i.entry))),
            tuple(self.findings))

    # --- (a) the agreement document ------------------------------------------------------------

    def _document(self) -> bool:
        docs: list[tuple[_Side, Event, SignedDoc, Agreement]] = []
        for side in self.sides.values():
            for event in side.events:
                if event.kind in ("agreement.signed", "agreement.proposed"):
                    self.guarded(side, event, partial(self._agreement_doc, side, event, docs))
        signed = [d for d in docs if d[1].kind == "agreement.signed"]
        chosen = signed[0] if signed else docs[0] if docs else None
        if chosen is None:
            for side in self.sides.values():
                if not side.active:
                    continue
                first = min([e.pos for e in side.events if e.kind in _ACTIVITY]
                            + [_first_pos(r) for r in side.runs])
                self.finding(side, first, "agreement.unsigned",
                             f"this log records events of agreement {self.id}, but no log holds "
                             "its document signed by both nodes")
            return False
        _, _, chosen_doc, agreement = chosen
        self.agreement = agreement
        for index, side in self.sides.items():
            node = self.node_of[index]
            if node == agreement.provider:
                self.provider = side
            elif node == agreement.consumer:
                self.consumer = side
            else:
                first = min([e.pos for e in side.events] + [_first_pos(r) for r in side.runs])
                self.finding(side, first, "agreement.mismatch",
                             f"node {node} is not a party of agreement {self.id} (between "
                             f"{agreement.provider} and {agreement.consumer}), yet its log "
                             "records events of it")
        # Both parties' signatures, verified with the trusted cards.
        provider_card = self.cards.get(agreement.provider)
        consumer_card = self.cards.get(agreement.consumer)
        for side, event, doc, _ in docs:
            if doc.payload != chosen_doc.payload:
                self.finding(side, event.pos, "agreement.mismatch",
                             f"this log's document of agreement {self.id} differs from the one "
                             f"in {chosen[0].facts.label} entry {chosen[1].pos}")
                continue
            if provider_card is None or consumer_card is None:
                missing = agreement.provider if provider_card is None else agreement.consumer
                self.finding(side, event.pos, "agreement.signatures",
                             f"no card was given for node {missing}, so its signature on "
                             f"agreement {self.id} cannot be verified")
                continue
            try:
                verify_agreement(doc, provider_card, consumer_card,
                                 countersigned=event.kind == "agreement.signed")
            except TrustspaceError as e:
                self.finding(side, event.pos, "agreement.signatures", e.message)
        # Each party's own log records the agreement as signed by both, if it was used.
        concluded = bool(signed) or any(side.active for side in self.sides.values())
        for role, party in (("provider", self.provider), ("consumer", self.consumer)):
            if party is None and concluded:
                present = self.provider or self.consumer
                assert present is not None
                node = agreement.provider if role == "provider" else agreement.consumer
                self.finding(present, chosen[1].pos if present is chosen[0] else None,
                             "agreement.log-missing",
                             f"the {role}'s log (node {node}) was not given: what it sent, "
                             "received or holds cannot be compared")
            elif party is not None and party.active and not party.of("agreement.signed"):
                first = min([e.pos for e in party.events if e.kind in _ACTIVITY]
                            + [_first_pos(r) for r in party.runs])
                self.finding(party, first, "agreement.unsigned",
                             f"the {role}'s log never records agreement {self.id} as signed "
                             "by both nodes")
        return True

    def _agreement_doc(self, side: _Side, event: Event,
                       docs: list[tuple[_Side, Event, SignedDoc, Agreement]]) -> None:
        doc = _doc(event.body, "document")
        try:
            agreement = Agreement.from_doc(doc)
        except TrustspaceError as e:
            raise _Malformed(f"its document is not an agreement: {e.message}") from None
        if agreement.agreement_id != self.id:
            self.finding(side, event.pos, "agreement.mismatch",
                         f"the entry names agreement {self.id}, its document is agreement "
                         f"{agreement.agreement_id}")
            return
        if event.body.get("hash") != doc.hash:
            self.finding(side, event.pos, "agreement.mismatch",
                         f"the entry's hash is not the hash of its agreement document "
                         f"({doc.hash[:16]}…)")
        docs.append((side, event, doc, agreement))

    # --- (b) the provider's side ---------------------------------------------------------------

    def _provider_deliveries(self, side: _Side, agreement: Agreement) -> dict[str, Event]:
        terms = agreement.terms
        signed_at = _first(side, "agreement.signed")
        revoked = self._revocation(side, "agreement.revoked")
        started: dict[str, Event] = {}
        times: list[tuple[int, int, str]] = []

        def one(event: Event) -> None:
            delivery = _text(event.body, "delivery")
            body = self._signed_body(side, event, "document", "delivery-start",
                                     agreement.provider, "delivery.document")
            started_at = event.time
            if body is not None:
                started_at = _int(body, "started_at")
                if body.get("delivery_id") != delivery or body.get("number") != \
                        event.body.get("number"):
                    self.finding(side, event.pos, "delivery.document",
                                 "the delivery-start document names another delivery or "
                                 "number than its entry")
                self._fields(side, event.pos, body.get("fields"), agreement,
                             f"delivery {delivery} announces")
            if delivery in started:
                self.finding(side, event.pos, "delivery.document",
                             f"delivery {delivery} is started a second time")
                return
            started[delivery] = event
            times.append((started_at, event.pos, delivery))
            if signed_at is None or event.pos < signed_at.pos:
                self.finding(side, event.pos, "agreement.unsigned",
                             f"delivery {delivery} started before the agreement was signed by "
                             "both nodes")
            if not agreement.created_at <= started_at < agreement.expires_at:
                self.finding(side, event.pos, "delivery.lifetime",
                             f"delivery {delivery} started at {_when(started_at)}, outside the "
                             f"agreement's lifetime {_when(agreement.created_at)} to "
                             f"{_when(agreement.expires_at)}")
            if revoked is not None and event.pos > revoked.pos:
                self.finding(side, event.pos, "delivery.revoked",
                             f"delivery {delivery} started after the agreement was revoked "
                             f"(entry {revoked.pos})")

        for event in side.of("delivery.started"):
            self.guarded(side, event, partial(one, event))
        # At most max_deliveries in any period (the provider's own, signed start times).
        times.sort()
        window = terms.period * 1000
        low = 0
        for high, (at, pos, delivery) in enumerate(times):
            while times[low][0] <= at - window:
                low += 1
            if high - low + 1 > terms.max_deliveries:
                self.finding(side, pos, "delivery.frequency",
                             f"delivery {delivery} makes {high - low + 1} deliveries started "
                             f"within {terms.period} s; the agreement allows "
                             f"{terms.max_deliveries}")
        return started

    def _provider_envelopes(self, side: _Side, agreement: Agreement,
                            started: Mapping[str, Event]) -> None:
        signed_at = _first(side, "agreement.signed")
        revoked = _first(side, "agreement.revoked")
        runs = {r.delivery: r for r in side.runs if r.kind == "envelope.sent"}
        for run in runs.values():
            first = _first_pos(run)
            if run.delivery not in started:
                self.finding(side, first, "delivery.unknown",
                             f"envelopes were sent for delivery {run.delivery}, which this log "
                             "never started")
            if signed_at is None or first < signed_at.pos:
                self.finding(side, first, "agreement.unsigned",
                             f"envelopes of delivery {run.delivery} were sent before the "
                             "agreement was signed by both nodes")
            if revoked is not None and run.positions[-1] > revoked.pos:
                after = next(p for p in run.positions if p > revoked.pos)
                self.finding(side, after, "delivery.revoked",
                             f"envelopes of delivery {run.delivery} were sent after the "
                             f"agreement was revoked (entry {revoked.pos})")
            for fields, pos in run.field_lists():
                self._fields(side, pos, fields, agreement, f"delivery {run.delivery} sends")
        self._completions(side, runs, agreement.provider)

    def _completions(self, side: _Side, runs: Mapping[str, EnvelopeRun], provider: str) -> None:
        """Each delivery.completed: a provider-signed end matching the envelopes recorded."""

        def one(event: Event) -> None:
            delivery = _text(event.body, "delivery")
            counted = (_int(event.body, "envelopes"), _int(event.body, "rows"),
                       _text(event.body, "last_digest", empty=True))
            body = self._signed_body(side, event, "document", "delivery-end", provider,
                                     "delivery.document")
            if body is not None and (body.get("delivery_id"), body.get("envelopes"),
                                     body.get("rows"), body.get("last_digest")) != \
                    (delivery, *counted):
                self.finding(side, event.pos, "delivery.document",
                             "the delivery-end document does not match its entry")
            run = runs.get(delivery)
            recorded = (0, 0, "") if run is None else \
                (len(run), run.total_rows(), run.digest(len(run) - 1) if len(run) else "")
            if counted != recorded:
                self.finding(side, event.pos, "delivery.totals",
                             f"delivery {delivery} completed with {counted[0]} envelopes, "
                             f"{counted[1]} rows, last digest {counted[2][:16] or '(none)'}; "
                             f"this log recorded {recorded[0]} envelopes, {recorded[1]} rows, "
                             f"last digest {recorded[2][:16] or '(none)'}")

        for event in side.of("delivery.completed"):
            self.guarded(side, event, partial(one, event))

    def _provider_receipts(self, side: _Side) -> dict[str, Event]:
        receipts: dict[str, Event] = {}

        def one(event: Event) -> None:
            receipt_hash = _text(event.body, "receipt_hash")
            self._receipt(side, event, receipt_hash)
            receipts.setdefault(receipt_hash, event)

        for event in side.of("receipt.received"):
            self.guarded(side, event, partial(one, event))
        return receipts

    # --- (c) the consumer's side ---------------------------------------------------------------

    def _consumer(self, side: _Side, agreement: Agreement, provider_started: Mapping[str, Event],
                  provider_given: bool) -> None:
        terms = agreement.terms
        signed_at = _first(side, "agreement.signed")
        revoked = self._revocation(side, "revocation.received")
        started: dict[str, Event] = {}

        def start(event: Event) -> None:
            delivery = _text(event.body, "delivery")
            self._signed_body(side, event, "document", "delivery-start", agreement.provider,
                              "delivery.document")
            started.setdefault(delivery, event)
            if signed_at is None or event.pos < signed_at.pos:
                self.finding(side, event.pos, "agreement.unsigned",
                             f"delivery {delivery} was received before this log records the "
                             "agreement as signed by both nodes")
            if provider_given:
                theirs = provider_started.get(delivery)
                if theirs is None:
                    self.finding(side, event.pos, "delivery.unknown",
                                 f"delivery {delivery} was received, but the provider's log "
                                 "never started it")
                elif _doc(theirs.body, "document").payload != \
                        _doc(event.body, "document").payload:
                    self.finding(side, event.pos, "delivery.document",
                                 f"the consumer's start document of delivery {delivery} differs "
                                 "from the provider's")

        for event in side.of("delivery.started"):
            self.guarded(side, event, partial(start, event))
        runs = {r.delivery: r for r in side.runs if r.kind == "envelope.received"}
        for run in runs.values():
            if run.delivery not in started:
                self.finding(side, _first_pos(run), "delivery.unknown",
                             f"envelopes of delivery {run.delivery} were received without its "
                             "start being recorded")
            for fields, pos in run.field_lists():
                self._fields(side, pos, fields, agreement, f"delivery {run.delivery} brings")
        self._completions(side, runs, agreement.provider)
        completed = {_text(e.body, "delivery"): e for e in side.of("delivery.completed")
                     if isinstance(e.body.get("delivery"), str)}
        aborted = {str(e.body["delivery"]): e for e in side.of("delivery.aborted")
                   if isinstance(e.body.get("delivery"), str)}
        destroyed = self._destructions(side, agreement, runs)
        read_out = self._reads(side, agreement, completed, destroyed, aborted, revoked)
        # Every delivery held is destroyed by its deadline.
        for delivery, run in runs.items():
            if not any(r != MISSING for r in run.rows):
                continue
            done = completed.get(delivery)
            received_at = done.time if done is not None else run.last_time
            at = done.pos if done is not None else run.positions[-1]
            deadline = received_at + terms.retention * 1000
            why = f"retention of {terms.retention} s after it was received"
            if revoked is not None and max(revoked.time, received_at) < deadline:
                deadline, why = max(revoked.time, received_at), "the revocation was received"
            if delivery in read_out and read_out[delivery] < deadline:
                deadline, why = read_out[delivery], f"it was read {terms.max_reads} times"
            end = destroyed.get(delivery) or aborted.get(delivery)
            if end is None:
                if side.facts.last_time > deadline + self.grace_ms:
                    self.finding(side, at, "destruction.overdue",
                                 f"delivery {delivery} is not destroyed: it was due at "
                                 f"{_when(deadline)} ({why}), and this log goes on until "
                                 f"{_when(side.facts.last_time)}")
            elif end.time > deadline + self.grace_ms:
                self.finding(side, end.pos, "destruction.late",
                             f"delivery {delivery} was destroyed at {_when(end.time)}, "
                             f"{(end.time - deadline) // 1000} s after it was due ({why}); "
                             f"the grace is {self.grace_ms // 1000} s")

    def _reads(self, side: _Side, agreement: Agreement, completed: Mapping[str, Event],
               destroyed: Mapping[str, Event], aborted: Mapping[str, Event],
               revoked: Event | None) -> dict[str, int]:
        """Check each read; returns when each delivery reached max_reads."""
        terms = agreement.terms
        counts: dict[str, int] = defaultdict(int)
        read_out: dict[str, int] = {}

        def one(event: Event) -> None:
            delivery, app = _text(event.body, "delivery"), _text(event.body, "app")
            number = _int(event.body, "read_number")
            if app != terms.app:
                self.finding(side, event.pos, "read.app",
                             f"application {app} read delivery {delivery}; the agreement names "
                             f"only {terms.app}")
            self._fields(side, event.pos, event.body.get("fields"), agreement,
                         f"the read of delivery {delivery} releases")
            done = completed.get(delivery)
            gone = destroyed.get(delivery) or aborted.get(delivery)
            if done is None or done.pos > event.pos:
                self.finding(side, event.pos, "read.invalid",
                             f"delivery {delivery} is read before it was completely received")
            elif gone is not None and gone.pos < event.pos:
                self.finding(side, event.pos, "read.invalid",
                             f"delivery {delivery} is read after it was destroyed "
                             f"(entry {gone.pos})")
            elif revoked is not None and revoked.pos < event.pos:
                self.finding(side, event.pos, "read.invalid",
                             f"delivery {delivery} is read after the revocation was received "
                             f"(entry {revoked.pos})")
            counts[delivery] += 1
            count = counts[delivery]
            if count > terms.max_reads:
                self.finding(side, event.pos, "read.max_reads",
                             f"this is read {count} of delivery {delivery}; the agreement "
                             f"allows {terms.max_reads}")
            elif number != count:
                self.finding(side, event.pos, "read.max_reads",
                             f"the read says it is read {number} of delivery {delivery}, but it "
                             f"is read {count} in this log: reads are missing from the log")
            if count == terms.max_reads:
                read_out.setdefault(delivery, event.time)

        for event in side.of("data.read"):
            self.guarded(side, event, partial(one, event))
        return read_out

    def _destructions(self, side: _Side, agreement: Agreement,
                      runs: Mapping[str, EnvelopeRun]) -> dict[str, Event]:
        """Check each destruction and its receipt; returns the first per delivery."""
        destroyed: dict[str, Event] = {}

        def one(event: Event) -> None:
            body = event.body
            deliveries = body.get("deliveries")
            if not isinstance(deliveries, list) or not all(isinstance(d, str) for d in deliveries):
                raise _Malformed("deliveries must be a list of delivery ids")
            receipt = self._receipt(side, event, _text(body, "receipt_hash"))
            for delivery in deliveries:
                destroyed.setdefault(delivery, event)
            if receipt is None:
                return
            listed = receipt.get("deliveries")
            if not isinstance(listed, list) or not all(isinstance(d, dict) for d in listed):
                self.finding(side, event.pos, "receipt.invalid",
                             "the receipt does not list its deliveries")
                return
            problems = []
            if [d.get("delivery_id") for d in listed] != deliveries:
                problems.append("it lists other deliveries than its entry")
            if receipt.get("reason") != body.get("reason"):
                problems.append("its reason differs from its entry's")
            if receipt.get("rows") != body.get("rows") or receipt.get("rows") != sum(
                    d.get("rows") if isinstance(d.get("rows"), int) else 0 for d in listed):
                problems.append("its row counts do not add up")
            for item in listed:
                run = runs.get(str(item.get("delivery_id")))
                if run is None:
                    continue
                digests = [run.digest(i) for i in range(len(run)) if run.rows[i] != MISSING]
                if item.get("digests") != digests or item.get("rows") != run.total_rows():
                    problems.append(f"delivery {item.get('delivery_id')} is listed with other "
                                    "envelope digests or rows than were received")
            if problems:
                self.finding(side, event.pos, "receipt.invalid",
                             f"the destruction receipt does not match: {'; '.join(problems)}")

        for event in side.of("data.destroyed"):
            self.guarded(side, event, partial(one, event))
        return destroyed

    # --- (d) across the two logs ---------------------------------------------------------------

    def _envelopes_across(self, provider: _Side, consumer: _Side) -> None:
        sent = {r.delivery: r for r in provider.runs if r.kind == "envelope.sent"}
        received = {r.delivery: r for r in consumer.runs if r.kind == "envelope.received"}
        aborted = {e.body.get("delivery") for e in consumer.of("delivery.aborted")}
        for delivery in sorted(set(sent) | set(received)):
            out, came = sent.get(delivery), received.get(delivery)
            n_out, n_came = (len(out) if out else 0), (len(came) if came else 0)
            if out is not None and came is not None:
                self._compare_runs(consumer, out, came)
            if n_out > n_came and delivery not in aborted:
                assert out is not None
                self.finding(provider, out.positions[n_came], "envelope.unreceived",
                             f"envelopes {n_came}..{n_out - 1} of delivery {delivery} were sent, "
                             "but the consumer's log never received them")
            if n_came > n_out:
                assert came is not None
                self.finding(consumer, came.positions[n_out], "envelope.unsent",
                             f"envelopes {n_out}..{n_came - 1} of delivery {delivery} were "
                             "received, but the provider's log never sent them")

    def _compare_runs(self, consumer: _Side, out: EnvelopeRun, came: EnvelopeRun) -> None:
        differ = [i for i in range(min(len(out), len(came)))
                  if MISSING not in (out.rows[i], came.rows[i])
                  and (out.digests[i * 32:i * 32 + 32] != came.digests[i * 32:i * 32 + 32]
                       or out.rows[i] != came.rows[i])]
        if differ:
            i = differ[0]
            self.finding(consumer, came.positions[i], "envelope.mismatch",
                         f"envelope {i} of delivery {came.delivery} was received with digest "
                         f"{came.digest(i)[:16]}… and {came.rows[i]} rows; the provider sent "
                         f"{out.digest(i)[:16]}… and {out.rows[i]} rows"
                         + (f" ({len(differ)} envelopes differ)" if len(differ) > 1 else ""))
        if set(out.fields) != set(came.fields):
            pos = min(p for f, p in came.fields.items() if f not in out.fields) \
                if set(came.fields) - set(out.fields) else _first_pos(came)
            self.finding(consumer, pos, "envelope.mismatch",
                         f"envelopes of delivery {came.delivery} were received with other "
                         "fields than the provider sent")

    def _receipts_across(self, provider: _Side, consumer: _Side,
                         receipts: Mapping[str, Event]) -> None:
        # a receipt_hash that is no text was flagged as malformed where its entry was checked
        destroyed = {e.body["receipt_hash"]: e for e in consumer.of("data.destroyed")
                     if isinstance(e.body.get("receipt_hash"), str)}
        acknowledged = {e.body["receipt_hash"] for e in consumer.of("receipt.acknowledged")
                        if isinstance(e.body.get("receipt_hash"), str)}
        for receipt_hash, event in destroyed.items():
            if receipt_hash not in receipts:
                self.finding(consumer, event.pos, "receipt.missing",
                             f"the provider's log holds no receipt {receipt_hash[:16]}… for this "
                             "destruction"
                             + (", although this log records the provider's acknowledgement"
                                if receipt_hash in acknowledged else
                                " (the receipt was not acknowledged: it may still be queued)"))
        for receipt_hash, event in receipts.items():
            if receipt_hash not in destroyed:
                self.finding(provider, event.pos, "receipt.unmatched",
                             f"the provider holds receipt {receipt_hash[:16]}…, but the "
                             "consumer's log records no destruction with it")

    # --- documents -----------------------------------------------------------------------------

    def _signed_body(self, side: _Side, event: Event, key: str, doc_type: str, signer: str,
                     rule: str) -> dict[str, Any] | None:
        """The body of the signed document at ``key``, if ``signer`` signed it for us."""
        doc = _doc(event.body, key)
        card = self.cards.get(signer)
        problem = None
        body: dict[str, Any] | None = None
        if doc.type != doc_type:
            problem = f"the document is a {doc.type}, not a {doc_type}"
        elif card is None:
            problem = f"no card was given for node {signer}, so its signature cannot be verified"
        else:
            try:
                doc.verify(signer, card.verify_key, what=f"the {doc_type} document")
                body = doc.body()
            except TrustspaceError as e:
                problem = e.message
        if body is not None and body.get("agreement_id") != self.id:
            problem, body = f"the {doc_type} document is of another agreement", None
        if problem is not None:
            self.finding(side, event.pos, rule, problem)
        return body

    def _receipt(self, side: _Side, event: Event, receipt_hash: str) -> dict[str, Any] | None:
        """A destruction receipt signed by the consumer, whose hash the entry names."""
        agreement = self.agreement
        assert agreement is not None
        body = self._signed_body(side, event, "receipt", "destruction-receipt",
                                 agreement.consumer, "receipt.invalid")
        if _doc(event.body, "receipt").hash != receipt_hash:
            self.finding(side, event.pos, "receipt.invalid",
                         "the entry's receipt_hash is not the hash of its receipt")
        if body is not None and (body.get("provider"), body.get("consumer")) != \
                (agreement.provider, agreement.consumer):
            self.finding(side, event.pos, "receipt.invalid",
                         "the receipt names other nodes than the agreement's parties")
        return body

    def _revocation(self, side: _Side, kind: str) -> Event | None:
        """The first revocation event of ``kind``, after checking every one's document."""
        agreement = self.agreement
        assert agreement is not None
        events = side.of(kind)
        for event in events:

            def one(e: Event = event) -> None:
                body = self._signed_body(side, e, "document", "revocation", agreement.provider,
                                         "revocation.document")
                if body is not None and (body.get("provider"), body.get("consumer")) != \
                        (agreement.provider, agreement.consumer):
                    self.finding(side, e.pos, "revocation.document",
                                 "the revocation names other nodes than the agreement's parties")

            self.guarded(side, event, one)
        return events[0] if events else None

    def _fields(self, side: _Side, pos: int, fields: object, agreement: Agreement,
                what: str) -> None:
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            self.finding(side, pos, "event.malformed", f"{what} no list of field names")
            return
        extra = [f for f in fields if f not in agreement.terms.field_names]
        if extra:
            self.finding(side, pos, "delivery.fields",
                         f"{what} fields the agreement does not grant: {', '.join(extra)}")

    # --- the timeline --------------------------------------------------------------------------

    def _timeline(self) -> None:
        for side in self.sides.values():
            label = side.facts.label
            for event in side.events:
                self.items.append(TimelineItem(event.time, label, event.pos, event.pos,
                                               event.kind, _describe(event)))
            for run in side.runs:
                verb = "sent" if run.kind == "envelope.sent" else "received"
                self.items.append(TimelineItem(
                    run.first_time, label, _first_pos(run), run.positions[-1], run.kind,
                    f"{len(run)} envelopes of delivery {run.delivery} {verb}, "
                    f"{run.total_rows()} rows"))


# --- small helpers ---------------------------------------------------------------------------


def _describe(event: Event) -> str:
    b = event.body
    kind = event.kind
    if kind == "negotiation.decided":
        return f"request {b.get('request')} decided: {b.get('outcome')}"
    if kind in ("agreement.proposed", "agreement.signed"):
        return ("agreement proposed, signed by the provider" if kind == "agreement.proposed"
                else f"agreement signed by both nodes (recorded by the {b.get('role')})")
    if kind == "delivery.started":
        return f"delivery {b.get('delivery')} (number {b.get('number')}) started"
    if kind == "delivery.completed":
        return (f"delivery {b.get('delivery')} completed: {b.get('envelopes')} envelopes, "
                f"{b.get('rows')} rows")
    if kind in ("delivery.refused", "delivery.aborted", "data.read_refused"):
        return f"{kind.replace('.', ' ').replace('_', ' ')}: {b.get('reason')}"
    if kind == "data.read":
        return (f"application {b.get('app')} read delivery {b.get('delivery')} "
                f"(read {b.get('read_number')}, {b.get('rows')} rows)")
    if kind == "data.destroyed":
        return (f"destroyed {', '.join(map(str, b.get('deliveries') or [])) or 'the key'} "
                f"({b.get('reason')}, {b.get('rows')} rows); receipt "
                f"{str(b.get('receipt_hash'))[:16]}…")
    if kind in ("receipt.received", "receipt.acknowledged"):
        verb = "received" if kind == "receipt.received" else "acknowledged by the provider"
        return f"receipt {str(b.get('receipt_hash'))[:16]}… {verb}"
    if kind == "agreement.revoked":
        return f"agreement revoked: {b.get('reason')}"
    return "revocation received" if kind == "revocation.received" else kind


def _doc(body: dict[str, Any], key: str) -> SignedDoc:
    try:
        return SignedDoc.from_dict(body.get(key))
    except TrustspaceError as e:
        raise _Malformed(f"its {key} is not a signed document: {e.message}") from None


def _text(body: dict[str, Any], key: str, *, empty: bool = False) -> str:
    value = body.get(key)
    if not isinstance(value, str) or (not value and not empty):
        raise _Malformed(f"{key} must be text")
    return value


def _int(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Malformed(f"{key} must be a whole number")
    return value


def _first(side: _Side, kind: str) -> Event | None:
    events = side.of(kind)
    return events[0] if events else None


def _first_pos(run: EnvelopeRun) -> int:
    return next((p for p in run.positions if p != MISSING), 0)


def _when(ms: int) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    except (ValueError, OverflowError, OSError):  # a time no calendar holds (year 10 000+)
        return f"unix time {ms} ms"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
