"""The evaluator: less than the offer is granted, more is refused naming every term."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from node.errors import (
    ClassificationRefused,
    DomainRefused,
    InvalidTerms,
    PolicyRefused,
    TermExceedsOffer,
    TrustspaceError,
)
from policies.evaluate import (
    REASON_TERMS,
    AgreedTerms,
    Decision,
    Reason,
    Request,
    Requester,
    check_within,
    evaluate,
)
from policies.terms import Terms, parse_terms
from tests.unit.policies.examples import EXAMPLE

DAY, HOUR = 86_400, 3_600
OFFER = parse_terms(EXAMPLE)
MANUAL = dataclasses.replace(OFFER, approval="manual")
GENEROUS = dataclasses.replace(
    OFFER, purposes=("credit-scoring", "risk-review"),
    consumer_domains=("finance.qingdao", "bank.jinan"),
    limits=dataclasses.replace(OFFER.limits, onward_transfer=True))
ASKER = Requester(node_id="node-consumer", domain="finance.qingdao")
ALL_FIELDS = (("company_id", "plain"), ("legal_person", "mask"), ("phone", "hash"),
              ("revenue", "plain"))


def ask(**change: Any) -> Request:
    return dataclasses.replace(Request(purpose="credit-scoring", app="scoring-app"), **change)


def agreed(**change: Any) -> AgreedTerms:
    base = AgreedTerms(purpose="credit-scoring", app="scoring-app", fields=ALL_FIELDS,
                       max_deliveries=24, period=DAY, retention=7 * DAY, max_reads=10,
                       valid_for=90 * DAY, onward_transfer=False)
    return dataclasses.replace(base, **change)


GRANTED: dict[str, tuple[Terms, Request, str, AgreedTerms]] = {
    "nothing asked takes the whole offer": (OFFER, ask(), "public", agreed()),
    "fewer fields keep the offer's order and transforms": (
        OFFER, ask(fields=("revenue", "phone")), "public",
        agreed(fields=(("phone", "hash"), ("revenue", "plain")))),
    "fields given as a list": (OFFER, ask(fields=["phone"]), "internal",
                               agreed(fields=(("phone", "hash"),))),
    "fewer deliveries": (OFFER, ask(max_deliveries=1), "public", agreed(max_deliveries=1)),
    "a longer period": (OFFER, ask(period=7 * DAY), "public", agreed(period=7 * DAY)),
    "fewer deliveries over a longer period": (
        OFFER, ask(max_deliveries=2, period=30 * DAY), "public",
        agreed(max_deliveries=2, period=30 * DAY)),
    "a shorter retention": (OFFER, ask(retention=HOUR), "public", agreed(retention=HOUR)),
    "fewer reads": (OFFER, ask(max_reads=1), "public", agreed(max_reads=1)),
    "a shorter lifetime": (OFFER, ask(valid_for=DAY), "public", agreed(valid_for=DAY)),
    "exactly the offer, spelled out": (
        OFFER, ask(fields=("company_id", "legal_person", "phone", "revenue"), max_deliveries=24,
                   period=DAY, retention=7 * DAY, max_reads=10, valid_for=90 * DAY),
        "public", agreed()),
    "sensitive data under manual approval": (MANUAL, ask(), "sensitive", agreed()),
    "onward transfer where the offer allows it": (
        GENEROUS, ask(onward_transfer=True), "public", agreed(onward_transfer=True)),
    "another of the offer's purposes": (GENEROUS, ask(purpose="risk-review"), "public",
                                        agreed(purpose="risk-review")),
}


@pytest.mark.parametrize(("offer", "request_", "level", "expected"), GRANTED.values(),
                         ids=GRANTED.keys())
def test_granted(offer: Terms, request_: Request, level: str, expected: AgreedTerms) -> None:
    decision = evaluate(offer, request_, ASKER, level)
    assert decision.granted and decision.reasons == ()
    assert decision.agreed == expected
    assert check_within(expected, offer) == ()


BANK = Requester(node_id="node-bank", domain="bank.jinan")

#: name -> (offer, request, requester, classification, the reason's term, message fragment)
REFUSED: dict[str, tuple[Terms, Request, Requester, str, str, str]] = {
    "core data": (OFFER, ask(), ASKER, "core", "classification",
                  "core data never leaves the node"),
    "an unknown classification": (OFFER, ask(), ASKER, "secret", "classification",
                                  "classification must be one of public, internal"),
    "a classification that is not text": (OFFER, ask(), ASKER, None, "classification",
                                          "found nothing"),  # type: ignore[dict-item]
    "sensitive data under auto approval": (OFFER, ask(), ASKER, "sensitive", "approval",
                                           "requires manual approval"),
    "a domain the offer does not name": (OFFER, ask(), BANK, "public", "consumer_domain",
                                         "consumer domain 'bank.jinan' is not one of"),
    "a purpose the offer does not name": (OFFER, ask(purpose="marketing"), ASKER, "public",
                                          "purpose", "purpose 'marketing' is not one of the "
                                          "offer's purposes (credit-scoring)"),
    "a purpose that differs in case": (OFFER, ask(purpose="Credit-Scoring"), ASKER, "public",
                                       "purpose", "is not one of"),
    "an app id with a space": (OFFER, ask(app="my app"), ASKER, "public", "app",
                               "app must be an id"),
    "an empty app id": (OFFER, ask(app=""), ASKER, "public", "app", "app must be an id"),
    "an app id of 65 characters": (OFFER, ask(app="a" * 65), ASKER, "public", "app",
                                   "app must be an id"),
    "an app id with a slash": (OFFER, ask(app="../etc"), ASKER, "public", "app",
                               "app must be an id"),
    "no fields": (OFFER, ask(fields=()), ASKER, "public", "fields",
                  "fields must name at least one field"),
    "a field the offer lacks": (OFFER, ask(fields=("phone", "address")), ASKER, "public",
                                "fields", "field 'address' is not in the offer"),
    "two fields the offer lacks": (OFFER, ask(fields=("b", "phone", "a")), ASKER, "public",
                                   "fields", "fields 'b', 'a' are not in the offer"),
    "a field asked twice": (OFFER, ask(fields=("phone", "phone")), ASKER, "public", "fields",
                            "fields lists 'phone' more than once"),
    "fields as one text": (OFFER, ask(fields="phone"), ASKER, "public", "fields",
                           "fields must be a list of field names"),
    "a field name that is not text": (OFFER, ask(fields=("phone", 3)), ASKER, "public",
                                      "fields", "fields[1] must be a field name"),
    "more deliveries": (OFFER, ask(max_deliveries=25), ASKER, "public", "max_deliveries",
                        "max_deliveries 25 exceeds the offer's 24"),
    "the same rate over a longer period": (OFFER, ask(max_deliveries=48, period=2 * DAY),
                                           ASKER, "public", "max_deliveries",
                                           "max_deliveries 48 exceeds the offer's 24"),
    "a shorter period": (OFFER, ask(period=HOUR), ASKER, "public", "period",
                         "period 1h is shorter than the offer's 1d"),
    "a lower rate but a shorter period": (OFFER, ask(max_deliveries=1, period=HOUR), ASKER,
                                          "public", "period", "shorter than the offer's 1d"),
    "a longer retention": (OFFER, ask(retention=30 * DAY), ASKER, "public", "retention",
                           "retention 30d exceeds the offer's 7d"),
    "more reads": (OFFER, ask(max_reads=11), ASKER, "public", "max_reads",
                   "max_reads 11 exceeds the offer's 10"),
    "a longer lifetime": (OFFER, ask(valid_for=91 * DAY), ASKER, "public", "valid_for",
                          "valid_for 91d exceeds the offer's 90d"),
    "onward transfer the offer forbids": (OFFER, ask(onward_transfer=True), ASKER, "public",
                                          "onward_transfer", "onward_transfer true exceeds the "
                                          "offer's false"),
    "onward transfer as text": (GENEROUS, ask(onward_transfer="yes"), ASKER, "public",
                                "onward_transfer", "must be true or false"),
    "zero deliveries": (OFFER, ask(max_deliveries=0), ASKER, "public", "max_deliveries",
                        "max_deliveries must be a whole number from 1"),
    "negative reads": (OFFER, ask(max_reads=-1), ASKER, "public", "max_reads",
                       "max_reads must be a whole number from 1"),
    "a zero period": (OFFER, ask(period=0), ASKER, "public", "period",
                      "period must be a whole number of seconds from 1"),
    "a negative retention": (OFFER, ask(retention=-DAY), ASKER, "public", "retention",
                             "retention must be a whole number of seconds"),
    "a boolean lifetime": (OFFER, ask(valid_for=True), ASKER, "public", "valid_for",
                           "found the boolean true"),
    "a duration as text": (OFFER, ask(retention="1d"), ASKER, "public", "retention",
                           "found the text '1d'"),
    "a float count": (OFFER, ask(max_reads=1.0), ASKER, "public", "max_reads",
                      "found the number 1.0"),
}


@pytest.mark.parametrize(("offer", "request_", "requester", "level", "term", "fragment"),
                         REFUSED.values(), ids=REFUSED.keys())
def test_refused(offer: Terms, request_: Request, requester: Requester, level: str, term: str,
                 fragment: str) -> None:
    decision = evaluate(offer, request_, requester, level)
    assert not decision.granted and decision.agreed is None
    assert decision.terms == (term,), decision.reasons
    assert fragment in decision.reasons[0].message


def test_every_reason_is_given_at_once_in_a_fixed_order() -> None:
    greedy = Request(purpose="marketing", app="bad app", fields=("phone", "secret"),
                     max_deliveries=100, period=1, retention=365 * DAY, max_reads=1000,
                     valid_for=3650 * DAY, onward_transfer=True)
    decision = evaluate(OFFER, greedy, BANK, "sensitive")
    assert decision.terms == tuple(t for t in REASON_TERMS if t != "classification")
    assert len(decision.reasons) == len(decision.terms)


def test_a_reason_term_is_always_a_known_term() -> None:
    for offer, request_, requester, level, _, _ in REFUSED.values():
        for reason in evaluate(offer, request_, requester, level).reasons:
            assert reason.term in REASON_TERMS


def test_evaluate_is_deterministic() -> None:
    first = evaluate(OFFER, ask(retention=DAY), ASKER, "public")
    assert all(evaluate(OFFER, ask(retention=DAY), ASKER, "public") == first for _ in range(3))


# --- the decision ------------------------------------------------------------------------------
REFUSAL_CLASSES = {
    "classification": ("core", ask(), ASKER, ClassificationRefused),
    "approval": ("sensitive", ask(), ASKER, ClassificationRefused),
    "consumer domain": ("public", ask(), BANK, DomainRefused),
    "purpose": ("public", ask(purpose="x"), ASKER, PolicyRefused),
    "app": ("public", ask(app=""), ASKER, PolicyRefused),
    "fields": ("public", ask(fields=("x",)), ASKER, TermExceedsOffer),
    "a limit": ("public", ask(max_reads=99), ASKER, TermExceedsOffer),
}


@pytest.mark.parametrize(("level", "request_", "requester", "error"), REFUSAL_CLASSES.values(),
                         ids=REFUSAL_CLASSES.keys())
def test_refusal_error_is_classed_by_the_first_reason(
        level: str, request_: Request, requester: Requester, error: type[Exception]) -> None:
    refusal = evaluate(OFFER, request_, requester, level).refusal()
    assert type(refusal) is error
    assert refusal.kind in ("refused", "unauthenticated")
    assert refusal.message.startswith("the request was refused: ")


def test_a_refusal_carries_every_reason() -> None:
    decision = evaluate(OFFER, ask(max_reads=99, retention=8 * DAY), ASKER, "public")
    message = decision.refusal().message
    assert "max_reads 99 exceeds" in message and "retention 8d exceeds" in message


INCONSISTENT = {
    "neither terms nor reasons": (None, ()),
    "both terms and reasons": (agreed(), (Reason("fields", "x"),)),
}


@pytest.mark.parametrize(("terms", "reasons"), INCONSISTENT.values(), ids=INCONSISTENT.keys())
def test_a_decision_is_terms_or_reasons(terms: AgreedTerms | None,
                                        reasons: tuple[Reason, ...]) -> None:
    with pytest.raises(TrustspaceError):
        Decision(terms, reasons)


def test_a_granted_decision_has_no_refusal() -> None:
    with pytest.raises(TrustspaceError):
        evaluate(OFFER, ask(), ASKER, "public").refusal()


# --- agreed terms as a dict -------------------------------------------------------------------
def test_agreed_to_dict() -> None:
    data = agreed(fields=(("phone", "hash"), ("revenue", "plain"))).to_dict()
    assert data == {"purpose": "credit-scoring", "app": "scoring-app",
                    "fields": [["phone", "hash"], ["revenue", "plain"]],
                    "max_deliveries": 24, "period": DAY, "retention": 7 * DAY,
                    "max_reads": 10, "valid_for": 90 * DAY, "onward_transfer": False}
    assert AgreedTerms.from_dict(json.loads(json.dumps(data))) == agreed(
        fields=(("phone", "hash"), ("revenue", "plain")))


def _agreed_dict(**change: Any) -> dict[str, Any]:
    data = agreed().to_dict()
    data.update(change)
    return {key: value for key, value in data.items() if value is not ...}


AGREED_REFUSALS: dict[str, tuple[object, str]] = {
    "not a dict": ("terms", "the agreed terms must be a table"),
    "an extra key": (_agreed_dict(bonus=1), "agreed terms.bonus is not a key"),
    "a missing key": (_agreed_dict(max_reads=...), "lack agreed terms.max_reads"),
    "a purpose that is no id": (_agreed_dict(purpose="a b"), "purpose must be an id"),
    "an app that is no id": (_agreed_dict(app=""), "app must be an id"),
    "no fields": (_agreed_dict(fields=[]), "fields must list at least one field"),
    "fields as an object": (_agreed_dict(fields={"a": "plain"}), "fields must be a list"),
    "an unknown transform": (_agreed_dict(fields=[["a", "encrypt"]]),
                             "fields.a must be one of plain, mask, hash"),
    "a repeated field": (_agreed_dict(fields=[["a", "plain"], ["a", "hash"]]),
                         "more than once"),
    "a count as a boolean": (_agreed_dict(max_deliveries=True),
                             "max_deliveries must be a whole number"),
    "a zero duration": (_agreed_dict(retention=0), "retention must be a whole number"),
    "a duration as text": (_agreed_dict(valid_for="90d"), "valid_for must be a whole number"),
    "onward transfer as text": (_agreed_dict(onward_transfer="false"),
                                "onward_transfer must be true or false"),
}


@pytest.mark.parametrize(("data", "fragment"), AGREED_REFUSALS.values(),
                         ids=AGREED_REFUSALS.keys())
def test_agreed_from_dict_refuses(data: object, fragment: str) -> None:
    with pytest.raises(InvalidTerms) as caught:
        AgreedTerms.from_dict(data)
    assert fragment in caught.value.message


# --- re-checking an agreement received from a peer --------------------------------------------
BEYOND: dict[str, tuple[AgreedTerms, str, str]] = {
    "a purpose the offer lacks": (agreed(purpose="marketing"), "purpose", "is not one of"),
    "a field the offer lacks": (agreed(fields=(("phone", "hash"), ("address", "plain"))),
                                "fields", "'address' is not in the offer"),
    "a hashed field delivered plain": (agreed(fields=(("phone", "plain"),)), "fields",
                                       "field 'phone' has transform 'plain' but the offer "
                                       "gives it as 'hash'"),
    "fields out of the offer's order": (agreed(fields=(("revenue", "plain"),
                                                       ("company_id", "plain"))),
                                        "fields", "not in the offer's order"),
    "more deliveries": (agreed(max_deliveries=25), "max_deliveries", "25 exceeds"),
    "a shorter period": (agreed(period=HOUR), "period", "1h is shorter"),
    "a longer retention": (agreed(retention=8 * DAY), "retention", "8d exceeds"),
    "more reads": (agreed(max_reads=11), "max_reads", "11 exceeds"),
    "a longer lifetime": (agreed(valid_for=91 * DAY), "valid_for", "91d exceeds"),
    "onward transfer": (agreed(onward_transfer=True), "onward_transfer", "true exceeds"),
}


@pytest.mark.parametrize(("terms", "term", "fragment"), BEYOND.values(), ids=BEYOND.keys())
def test_check_within_finds(terms: AgreedTerms, term: str, fragment: str) -> None:
    reasons = check_within(terms, OFFER)
    assert [reason.term for reason in reasons] == [term]
    assert fragment in reasons[0].message


def test_check_within_accepts_what_evaluate_grants() -> None:
    decision = evaluate(OFFER, ask(fields=("revenue", "legal_person"), max_reads=2),
                        ASKER, "public")
    assert decision.agreed is not None
    assert check_within(decision.agreed, OFFER) == ()
