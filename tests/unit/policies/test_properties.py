"""Properties of the evaluator over random offers and requests (hypothesis)."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.evaluate import (
    NUMERIC_TERMS,
    AgreedTerms,
    Request,
    Requester,
    check_within,
    evaluate,
)
from policies.terms import CLASSIFICATIONS, TRANSFORMS, Limits, Terms

DAY = 86_400
ids = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
domains = st.from_regex(r"[a-z]{1,5}\.[a-z]{1,5}", fullmatch=True)
names = st.from_regex(r"[a-z_]{1,6}", fullmatch=True)
counts = st.integers(min_value=1, max_value=1_000)
seconds = st.integers(min_value=1, max_value=400 * DAY)


@st.composite
def offers(draw: st.DrawFn) -> Terms:
    field_names = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    return Terms(
        purposes=tuple(draw(st.lists(ids, min_size=1, max_size=3, unique=True))),
        consumer_domains=tuple(draw(st.lists(domains, min_size=1, max_size=3, unique=True))),
        approval=draw(st.sampled_from(("auto", "manual"))),
        fields=tuple((name, draw(st.sampled_from(TRANSFORMS))) for name in field_names),
        limits=Limits(max_deliveries=draw(counts), period=draw(seconds),
                      retention=draw(seconds), max_reads=draw(counts),
                      valid_for=draw(seconds), onward_transfer=draw(st.booleans())),
    )


def _around(draw: st.DrawFn, offered: int) -> int | None:
    """None, or a number near the offered one: below, equal, above, zero or negative."""
    return draw(st.none() | st.integers(min_value=-2, max_value=offered * 2 + 2)
                | st.sampled_from((offered - 1, offered, offered + 1)))


@st.composite
def situations(draw: st.DrawFn) -> tuple[Terms, Request, Requester, str]:
    """A random offer and a random request against it, sometimes inside, often not."""
    offer = draw(offers())
    offered_names = list(offer.field_names)
    field_choice = st.sampled_from(offered_names) | st.sampled_from(("zz_extra", "other"))
    request = Request(
        purpose=draw(st.sampled_from(offer.purposes) | ids),
        app=draw(ids | st.sampled_from(("", "bad app", "a" * 65))),
        fields=draw(st.none() | st.lists(field_choice, max_size=8).map(tuple)),
        onward_transfer=draw(st.booleans()),
        **{term: _around(draw, getattr(offer.limits, term)) for term in NUMERIC_TERMS},
    )
    requester = Requester(node_id="node-x",
                          domain=draw(st.sampled_from(offer.consumer_domains) | domains))
    classification = draw(st.sampled_from((*CLASSIFICATIONS, "secret")))
    return offer, request, requester, classification


def _fits(offer: Terms, request: Request, requester: Requester, classification: str) -> bool:
    """An independent statement of the rules: does the request fit the offer?"""
    limits = offer.limits
    chosen = offer.field_names if request.fields is None else request.fields
    numbers = {t: getattr(request, t) if getattr(request, t) is not None
               else getattr(limits, t) for t in NUMERIC_TERMS}
    return (classification in ("public", "internal")
            or (classification == "sensitive" and offer.approval == "manual")) and all((
        requester.domain in offer.consumer_domains,
        request.purpose in offer.purposes,
        0 < len(request.app) <= 64 and " " not in request.app,
        len(chosen) > 0 and len(set(chosen)) == len(chosen),
        set(chosen) <= set(offer.field_names),
        all(numbers[t] > 0 for t in NUMERIC_TERMS),
        numbers["max_deliveries"] <= limits.max_deliveries,
        numbers["period"] >= limits.period,
        numbers["retention"] <= limits.retention,
        numbers["max_reads"] <= limits.max_reads,
        numbers["valid_for"] <= limits.valid_for,
        limits.onward_transfer or not request.onward_transfer,
    ))


def _never_exceeds(agreed: AgreedTerms, offer: Terms) -> None:
    limits = offer.limits
    assert agreed.purpose in offer.purposes
    assert set(agreed.fields) <= set(offer.fields), "a subset, with the offer's transforms"
    assert [n for n in offer.field_names if n in agreed.field_names] == list(agreed.field_names)
    assert 0 < agreed.max_deliveries <= limits.max_deliveries
    assert agreed.period >= limits.period
    assert 0 < agreed.retention <= limits.retention
    assert 0 < agreed.max_reads <= limits.max_reads
    assert 0 < agreed.valid_for <= limits.valid_for
    assert limits.onward_transfer or not agreed.onward_transfer


@settings(max_examples=200)
@given(situations())
def test_a_grant_never_exceeds_the_offer(case: tuple[Terms, Request, Requester, str]) -> None:
    offer, request, requester, classification = case
    decision = evaluate(offer, request, requester, classification)
    assert decision.granted == _fits(offer, request, requester, classification), decision
    if decision.agreed is not None:
        _never_exceeds(decision.agreed, offer)
        assert requester.domain in offer.consumer_domains
        assert classification in ("public", "internal", "sensitive")
        assert check_within(decision.agreed, offer) == ()
        assert AgreedTerms.from_dict(decision.agreed.to_dict()) == decision.agreed
    else:
        assert decision.reasons and all(r.message for r in decision.reasons)


@st.composite
def inside(draw: st.DrawFn) -> tuple[Terms, Request, Requester]:
    """An offer and a request that fits it in every dimension."""
    offer = draw(offers())
    limits = offer.limits

    def at_most(offered: int) -> int | None:
        return draw(st.none() | st.integers(min_value=1, max_value=offered))

    chosen = draw(st.lists(st.sampled_from(offer.field_names), min_size=1, unique=True))
    request = Request(
        purpose=draw(st.sampled_from(offer.purposes)), app=draw(ids),
        fields=draw(st.none() | st.permutations(chosen).map(tuple)),
        max_deliveries=at_most(limits.max_deliveries),
        period=draw(st.none() | st.integers(min_value=limits.period,
                                            max_value=limits.period * 3)),
        retention=at_most(limits.retention), max_reads=at_most(limits.max_reads),
        valid_for=at_most(limits.valid_for),
        onward_transfer=draw(st.booleans()) and limits.onward_transfer)
    requester = Requester(node_id="node-x", domain=draw(st.sampled_from(offer.consumer_domains)))
    return offer, request, requester


@settings(max_examples=100)
@given(inside(), st.sampled_from(("public", "internal")))
def test_a_request_inside_the_offer_is_granted(case: tuple[Terms, Request, Requester],
                                               level: str) -> None:
    offer, request, requester = case
    decision = evaluate(offer, request, requester, level)
    assert decision.agreed is not None, decision.reasons
    _never_exceeds(decision.agreed, offer)


DIMENSIONS = ("consumer_domain", "purpose", "fields", *NUMERIC_TERMS, "onward_transfer")


def _exceed(term: str, offer: Terms, request: Request, requester: Requester,
            by: int) -> tuple[Terms, Request, Requester]:
    """The same situation with ``term`` pushed ``by`` beyond the offer."""
    limits = offer.limits
    change: dict[str, Any] = {}
    if term == "consumer_domain":
        requester = dataclasses.replace(requester, domain="outside." + requester.domain)
    elif term == "purpose":
        change["purpose"] = "not-" + request.purpose
    elif term == "fields":
        change["fields"] = (*(request.fields or offer.field_names), "not_offered_" * 2)
    elif term == "period":
        offer = dataclasses.replace(offer, limits=dataclasses.replace(
            limits, period=limits.period + by))
        change["period"] = offer.limits.period - by
    elif term == "onward_transfer":
        offer = dataclasses.replace(offer, limits=dataclasses.replace(
            limits, onward_transfer=False))
        change["onward_transfer"] = True
    else:
        change[term] = getattr(limits, term) + by
    if term != "onward_transfer" and not offer.limits.onward_transfer:
        change.setdefault("onward_transfer", False)
    return offer, dataclasses.replace(request, **change), requester


@settings(max_examples=200)
@given(inside(), st.sampled_from(DIMENSIONS), st.integers(min_value=1, max_value=10 * DAY),
       st.sampled_from(("public", "internal")))
def test_exceeding_one_term_is_refused_naming_it(case: tuple[Terms, Request, Requester],
                                                  term: str, by: int, level: str) -> None:
    offer, request, requester = _exceed(term, *case, by=by)
    decision = evaluate(offer, request, requester, level)
    assert not decision.granted
    assert decision.terms == (term,), decision.reasons
    named = {"consumer_domain": "consumer domain", "fields": "field"}.get(term, term)
    assert named in decision.reasons[0].message
