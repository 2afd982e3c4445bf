"""The pure evaluator: does a consumer's request fit inside an offer?

A consumer may ask for less than the offer, never for more. :func:`evaluate` checks every
term and returns a :class:`Decision` that either carries the :class:`AgreedTerms` or *all*
the reasons for refusing, each naming its term with the asked and the offered value, so an
operator fixes a request in one round. It does no I/O and reads no clock: the same inputs
always give the same decision, which is what makes it testable exhaustively.

:func:`check_within` re-checks an existing agreement (e.g. a signed one received from a
peer) against the offer it claims to come from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from node.errors import (
    ClassificationRefused,
    DomainRefused,
    InvalidTerms,
    PolicyRefused,
    Refused,
    TermExceedsOffer,
    TrustspaceError,
)
from policies.durations import MAX_SECONDS, check_seconds, format_duration, is_seconds
from policies.terms import (
    CLASSIFICATIONS,
    COUNT_KEYS,
    DURATION_KEYS,
    MAX_COUNT,
    Terms,
    as_table,
    check_count,
    check_fields,
    describe,
    exact_keys,
    is_count,
    is_field_name,
    is_id,
    pairs_from_list,
)

#: Every term a :class:`Reason` can name, in the order reasons are given.
REASON_TERMS = ("classification", "approval", "consumer_domain", "purpose", "app", "fields",
                "max_deliveries", "period", "retention", "max_reads", "valid_for",
                "onward_transfer")
NUMERIC_TERMS = ("max_deliveries", "period", "retention", "max_reads", "valid_for")


@dataclass(frozen=True)
class Request:
    """What a consumer asks for; ``None`` means "what the offer gives"."""

    purpose: str
    app: str
    fields: tuple[str, ...] | None = None
    max_deliveries: int | None = None
    period: int | None = None
    retention: int | None = None
    max_reads: int | None = None
    valid_for: int | None = None
    onward_transfer: bool = False


@dataclass(frozen=True)
class Requester:
    """The authenticated node that asks; its domain comes from its trusted card."""

    node_id: str
    domain: str


@dataclass(frozen=True)
class AgreedTerms:
    """The concrete terms of one agreement: a subset of the offer, validated on construction.

    ``fields`` are ``(name, transform)`` pairs in the offer's order, which is the column
    order of every delivery.
    """

    purpose: str
    app: str
    fields: tuple[tuple[str, str], ...]
    max_deliveries: int
    period: int
    retention: int
    max_reads: int
    valid_for: int
    onward_transfer: bool

    def __post_init__(self) -> None:
        if not is_id(self.purpose):
            raise InvalidTerms(f"purpose must be an id; found {describe(self.purpose)}")
        if not is_id(self.app):
            raise InvalidTerms(f"app must be an id of 1-64 ASCII letters, digits, '.', '_' "
                               f"or '-'; found {describe(self.app)}")
        check_fields(self.fields, "fields")
        for key in COUNT_KEYS:
            check_count(getattr(self, key), key)
        for key in DURATION_KEYS:
            check_seconds(getattr(self, key), key=key)
        if not isinstance(self.onward_transfer, bool):
            raise InvalidTerms("onward_transfer must be true or false; "
                               f"found {describe(self.onward_transfer)}")

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    @property
    def transforms(self) -> tuple[str, ...]:
        return tuple(transform for _, transform in self.fields)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe form (str, int, bool, list, dict only) that is signed and stored."""
        data: dict[str, Any] = {item.name: getattr(self, item.name) for item in fields(self)}
        data["fields"] = [[name, transform] for name, transform in self.fields]
        return data

    @classmethod
    def from_dict(cls, data: object) -> AgreedTerms:
        """The inverse of :meth:`to_dict`; unknown or missing keys are refused."""
        doc = dict(as_table(data, "the agreed terms"))
        exact_keys(doc, _AGREED_KEYS, "agreed terms")
        doc["fields"] = pairs_from_list(doc["fields"], "fields")
        return cls(**doc)


_AGREED_KEYS = tuple(item.name for item in fields(AgreedTerms))


@dataclass(frozen=True)
class Reason:
    """Why a request was refused: the term and one sentence with asked and offered values."""

    term: str
    message: str


@dataclass(frozen=True)
class Decision:
    """Either agreed terms (granted) or the reasons for refusing, never both nor neither."""

    agreed: AgreedTerms | None
    reasons: tuple[Reason, ...]

    def __post_init__(self) -> None:
        if (self.agreed is None) != bool(self.reasons):
            raise TrustspaceError("a decision must carry agreed terms or reasons, not both "
                                  "nor neither")

    @property
    def granted(self) -> bool:
        return self.agreed is not None

    @property
    def terms(self) -> tuple[str, ...]:
        """The terms named by the reasons, in order, without repeats."""
        return tuple(dict.fromkeys(reason.term for reason in self.reasons))

    def refusal(self) -> Refused:
        """The error to raise for a refused decision, classed by its first reason."""
        if not self.reasons:
            raise TrustspaceError("a granted decision has no refusal")
        first = self.reasons[0].term
        cls: type[Refused] = (
            ClassificationRefused if first in ("classification", "approval")
            else DomainRefused if first == "consumer_domain"
            else PolicyRefused if first in ("purpose", "app")
            else TermExceedsOffer)
        return cls("the request was refused: "
                   + "; ".join(reason.message for reason in self.reasons))


# --- the evaluator ----------------------------------------------------------------------------
def evaluate(offer: Terms, request: Request, requester: Requester,
             classification: str) -> Decision:
    """Grant ``request`` within ``offer``, or refuse it with every reason that applies.

    Rules, each giving a reason named after its term:

    1. classification: ``core`` is never offered, an unknown level is refused (fail closed);
       approval: ``sensitive`` data needs an offer with manual approval.
    2. consumer_domain: the requester's domain must be one of the offer's.
    3. purpose: one of the offer's purposes; app: an id (1-64 of letters, digits, ``._-``).
    4. fields: a non-empty subset of the offered fields without duplicates; the agreement
       lists them in the offer's order with the offer's transforms.
    5. max_deliveries, retention, max_reads, valid_for: positive and at most the offer's.
       period: positive and *at least* the offer's. The frequency rule is deliberately
       strict — each of the two numbers must be within the offer on its own — so "48 per
       2d" is refused against "24 per 1d" although the average rate is equal (it allows
       bursts of 48), and "1 per 1h" is refused against "24 per 1d" because a shorter
       window is a different promise. Ask for fewer deliveries or a longer period instead.
    6. onward_transfer: may be true only if the offer allows it.

    A ``None`` in the request takes the offer's value. Whether a granted request waits for
    an operator is the caller's business (``offer.approval``).
    """
    reasons = [*_classification_reasons(offer, classification)]
    if requester.domain not in offer.consumer_domains:
        reasons.append(Reason("consumer_domain", (
            f"consumer domain {_show(requester.domain)} is not one of the offer's consumer "
            f"domains ({', '.join(offer.consumer_domains)})")))
    reasons.extend(_purpose_reasons(request.purpose, offer))
    if not is_id(request.app):
        reasons.append(Reason("app", (
            "app must be an id of 1-64 ASCII letters, digits, '.', '_' or '-'; "
            f"found {describe(request.app)}")))
    field_reasons, chosen = _field_reasons(request.fields, offer)
    reasons.extend(field_reasons)
    limits = offer.limits
    asked: dict[str, object] = {}
    for term in NUMERIC_TERMS:
        value = getattr(request, term)
        asked[term] = getattr(limits, term) if value is None else value
    asked["onward_transfer"] = request.onward_transfer
    reasons.extend(_limit_reasons(asked, offer))
    if reasons:
        return Decision(None, tuple(reasons))
    agreed = AgreedTerms(
        purpose=request.purpose, app=request.app,
        fields=tuple(pair for pair in offer.fields if pair[0] in chosen),
        max_deliveries=_int(asked["max_deliveries"]), period=_int(asked["period"]),
        retention=_int(asked["retention"]), max_reads=_int(asked["max_reads"]),
        valid_for=_int(asked["valid_for"]), onward_transfer=request.onward_transfer)
    return Decision(agreed, ())


def check_within(agreed: AgreedTerms, offer: Terms) -> tuple[Reason, ...]:
    """Every way ``agreed`` goes beyond ``offer``; empty when it stays inside.

    Beyond :func:`evaluate`'s rules, each field must carry exactly the offer's transform
    and the fields must keep the offer's order: a peer may not turn ``hash`` into ``plain``.
    """
    reasons = [*_purpose_reasons(agreed.purpose, offer)]
    offered = dict(offer.fields)
    unknown = [name for name in agreed.field_names if name not in offered]
    if unknown:
        reasons.append(_not_offered(unknown, offer))
    for name, transform in agreed.fields:
        if name in offered and offered[name] != transform:
            reasons.append(Reason("fields", (
                f"field {name!r} has transform {transform!r} but the offer gives it "
                f"as {offered[name]!r}")))
    order = [name for name in offer.field_names if name in set(agreed.field_names)]
    if not unknown and list(agreed.field_names) != order:
        reasons.append(Reason("fields", "fields are not in the offer's order "
                                        f"({', '.join(order)})"))
    asked: dict[str, object] = {term: getattr(agreed, term) for term in NUMERIC_TERMS}
    asked["onward_transfer"] = agreed.onward_transfer
    reasons.extend(_limit_reasons(asked, offer))
    return tuple(reasons)


# --- one rule at a time -----------------------------------------------------------------------
def _classification_reasons(offer: Terms, classification: object) -> Iterable[Reason]:
    if not isinstance(classification, str) or classification not in CLASSIFICATIONS:
        yield Reason("classification", (
            f"classification must be one of {', '.join(CLASSIFICATIONS)}; "
            f"found {describe(classification)}"))
    elif classification == "core":
        yield Reason("classification", "the dataset is classified core and core data never "
                                       "leaves the node")
    elif classification == "sensitive" and offer.approval != "manual":
        yield Reason("approval", "the dataset is classified sensitive, which requires manual "
                                 f"approval; the offer's approval is {offer.approval!r}")


def _purpose_reasons(purpose: object, offer: Terms) -> Iterable[Reason]:
    if not isinstance(purpose, str) or purpose not in offer.purposes:
        yield Reason("purpose", (
            f"purpose {_show(purpose)} is not one of the offer's purposes "
            f"({', '.join(offer.purposes)})"))


def _field_reasons(asked: object, offer: Terms) -> tuple[list[Reason], set[str]]:
    """Reasons against the requested fields, and the set of names that were asked."""
    if asked is None:
        return [], set(offer.field_names)
    if not isinstance(asked, (tuple, list)):
        return [Reason("fields", f"fields must be a list of field names; "
                                 f"found {describe(asked)}")], set()
    for index, name in enumerate(asked):
        if not is_field_name(name):
            return [Reason("fields", f"fields[{index}] must be a field name; "
                                     f"found {describe(name)}")], set()
    reasons = []
    if not asked:
        reasons.append(Reason("fields", "fields must name at least one field; found none"))
    # Counted once each: a peer may send many thousands of names (list.count was O(n^2)).
    repeated = sorted(name for name, times in Counter(asked).items() if times > 1)
    if repeated:
        shown = ", ".join(map(repr, repeated[:10])) + (", ..." if len(repeated) > 10 else "")
        reasons.append(Reason("fields", f"fields lists {shown} more than once"))
    offered = set(offer.field_names)
    unknown = [name for name in dict.fromkeys(asked) if name not in offered]
    if unknown:
        reasons.append(_not_offered(unknown, offer))
    return reasons, set(asked)


def _not_offered(names: Sequence[str], offer: Terms) -> Reason:
    shown = ", ".join(repr(name) for name in names[:10]) + (", ..." if len(names) > 10 else "")
    offered = ", ".join(offer.field_names[:20]) + (", ..." if len(offer.fields) > 20 else "")
    what = "field" if len(names) == 1 else "fields"
    verb = "is" if len(names) == 1 else "are"
    return Reason("fields", f"{what} {shown} {verb} not in the offer (offered: {offered})")


def _limit_reasons(asked: dict[str, object], offer: Terms) -> Iterable[Reason]:
    """Compare numbers and the onward transfer flag with the offer's limits."""
    limits = offer.limits
    for term in NUMERIC_TERMS:
        value, offered = asked[term], getattr(limits, term)
        is_duration = term in DURATION_KEYS
        valid = is_seconds(value) if is_duration else is_count(value)
        if not valid or not isinstance(value, int):
            expected = (f"a whole number of seconds from 1 to {MAX_SECONDS}" if is_duration
                        else f"a whole number from 1 to {MAX_COUNT}")
            yield Reason(term, f"{term} must be {expected}; found {describe(value)}")
        elif term == "period" and value < offered:
            yield Reason(term, (
                f"period {format_duration(value)} is shorter than the offer's "
                f"{format_duration(offered)}; a request may ask only for a lower frequency "
                "(fewer deliveries or a longer period)"))
        elif term != "period" and value > offered:
            show = format_duration if is_duration else str
            yield Reason(term, f"{term} {show(value)} exceeds the offer's {show(offered)}")
    onward = asked["onward_transfer"]
    if not isinstance(onward, bool):
        yield Reason("onward_transfer", "onward_transfer must be true or false; "
                                        f"found {describe(onward)}")
    elif onward and not limits.onward_transfer:
        yield Reason("onward_transfer", "onward_transfer true exceeds the offer's false: "
                                        "the offer forbids offering this data on")


def _int(value: object) -> int:
    if not isinstance(value, int):  # unreachable after _limit_reasons found nothing
        raise TrustspaceError(f"expected a checked whole number; found {describe(value)}")
    return value


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) and len(value) <= 80 else describe(value)
