"""The offer's policy terms: the most a provider will grant for one dataset.

They are read from the TOML file of PRODUCT.md ("Policy terms file") and fail closed:
every section and every key of that example is required, no other section or key is
allowed, and a mistake is refused with one sentence naming the key (``limits.retention``),
what was expected and what was found. A forgotten ``max_reads`` or ``onward_transfer``
must never silently become "unlimited" or "allowed".

:meth:`Terms.to_dict` is the JSON-safe form that gets signed and stored; fields stay an
ordered list of ``[name, transform]`` pairs because canonical JSON sorts object keys and the
field order is the column order of every delivery. :meth:`Terms.from_dict` is as strict as
the TOML parser: both end in the validating constructors.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any, TypeGuard

from node.errors import BadInput, ClassificationRefused, InvalidId, InvalidTerms
from node.ids import check_domain, check_id
from policies.durations import check_seconds, parse_duration

CLASSIFICATIONS = ("public", "internal", "sensitive", "core")
TRANSFORMS = ("plain", "mask", "hash")
APPROVALS = ("auto", "manual")
SECTIONS = ("offer", "fields", "limits")
OFFER_KEYS = ("purposes", "consumer_domains", "approval")
COUNT_KEYS = ("max_deliveries", "max_reads")
DURATION_KEYS = ("period", "retention", "valid_for")
LIMIT_KEYS = ("max_deliveries", "period", "retention", "max_reads", "valid_for",
              "onward_transfer")
MAX_COUNT = 2**31 - 1
MAX_FIELD_NAME = 128


# --- describing and checking single values ----------------------------------------------------
def describe(value: object) -> str:
    """``value`` as a short phrase for a message: 'the boolean true', 'a table', ..."""
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"the number {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {shown!r}" if shown.isprintable() else "unprintable text"
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a value of type {type(value).__name__}"


def is_count(value: object) -> TypeGuard[int]:
    """True for a whole number from 1 to :data:`MAX_COUNT`; a ``bool`` is no count."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_COUNT


def is_id(value: object) -> bool:
    try:
        check_id(value, what="id")
    except InvalidId:
        return False
    return True


def is_domain(value: object) -> bool:
    try:
        check_domain(value)
    except InvalidId:
        return False
    return True


def is_field_name(value: object) -> TypeGuard[str]:
    """Field names come from a dataset's header: any printable text without outer spaces."""
    return (isinstance(value, str) and 0 < len(value) <= MAX_FIELD_NAME
            and value.isprintable() and value == value.strip())


def field_key(name: str) -> str:
    """``fields.phone``, or ``fields."a b"`` when the name is no bare TOML key."""
    bare = name.isascii() and name.replace("-", "").replace("_", "").isalnum()
    return f"fields.{name}" if bare else f"fields.{_quoted(name)}"


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_count(value: object, key: str) -> int:
    if not is_count(value):
        raise InvalidTerms(f"{key} must be a whole number from 1 to {MAX_COUNT}; "
                           f"found {describe(value)}")
    return value


def _check_choice(value: object, choices: Sequence[str], key: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidTerms(f"{key} must be one of {', '.join(choices)}; found {describe(value)}")
    return value


def _check_names(values: object, key: str, kind: str) -> tuple[str, ...]:
    """A non-empty tuple of distinct ids (``kind="id"``) or domains (``kind="domain"``)."""
    if not isinstance(values, tuple):
        raise InvalidTerms(f"{key} must be a list; found {describe(values)}")
    if not values:
        raise InvalidTerms(f"{key} must list at least one {kind}; found an empty list")
    valid = is_id if kind == "id" else is_domain
    rule = ("1-64 ASCII letters, digits, '.', '_' or '-'" if kind == "id"
            else "lower-case dot-separated labels such as finance.qingdao")
    seen: set[str] = set()  # not values.index(): quadratic in a long list
    for index, item in enumerate(values):
        if not valid(item):
            raise InvalidTerms(f"{key}[{index}] must be {rule}; found {describe(item)}")
        if item in seen:
            raise InvalidTerms(f"{key} lists {item!r} more than once")
        seen.add(item)
    return values


# --- the terms themselves -------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    """How often, how long and how much; durations are whole seconds."""

    max_deliveries: int
    period: int
    retention: int
    max_reads: int
    valid_for: int
    onward_transfer: bool

    def __post_init__(self) -> None:
        for key in COUNT_KEYS:
            check_count(getattr(self, key), f"limits.{key}")
        for key in DURATION_KEYS:
            check_seconds(getattr(self, key), key=f"limits.{key}")
        if not isinstance(self.onward_transfer, bool):
            raise InvalidTerms("limits.onward_transfer must be true or false; "
                               f"found {describe(self.onward_transfer)}")

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in LIMIT_KEYS}


@dataclass(frozen=True)
class Terms:
    """One offer's policy terms, validated on construction."""

    purposes: tuple[str, ...]
    consumer_domains: tuple[str, ...]
    approval: str
    fields: tuple[tuple[str, str], ...]
    limits: Limits

    def __post_init__(self) -> None:
        _check_names(self.purposes, "offer.purposes", "id")
        _check_names(self.consumer_domains, "offer.consumer_domains", "domain")
        _check_choice(self.approval, APPROVALS, "offer.approval")
        check_fields(self.fields, "fields")
        if not isinstance(self.limits, Limits):
            raise InvalidTerms(f"limits must be a Limits; found {describe(self.limits)}")

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe form (str, int, bool, list, dict only) that is signed and stored."""
        return {
            "offer": {"purposes": list(self.purposes),
                      "consumer_domains": list(self.consumer_domains),
                      "approval": self.approval},
            "fields": [[name, transform] for name, transform in self.fields],
            "limits": self.limits.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: object) -> Terms:
        """The inverse of :meth:`to_dict`, refusing exactly what the TOML parser refuses."""
        doc = as_table(data, "the policy terms")
        exact_keys(doc, SECTIONS, None)
        offer = as_table(doc["offer"], "offer")
        exact_keys(offer, OFFER_KEYS, "offer")
        limits = as_table(doc["limits"], "limits")
        exact_keys(limits, LIMIT_KEYS, "limits")
        return cls(
            purposes=_list(offer["purposes"], "offer.purposes"),
            consumer_domains=_list(offer["consumer_domains"], "offer.consumer_domains"),
            approval=offer["approval"],
            fields=pairs_from_list(doc["fields"], "fields"),
            limits=Limits(**limits),
        )


def check_fields(fields: object, key: str) -> tuple[tuple[str, str], ...]:
    """A non-empty tuple of distinct ``(name, transform)`` pairs."""
    if not isinstance(fields, tuple):
        raise InvalidTerms(f"{key} must be a list of fields; found {describe(fields)}")
    if not fields:
        raise InvalidTerms(f"{key} must list at least one field; found none")
    seen: set[str] = set()
    for index, pair in enumerate(fields):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise InvalidTerms(f"{key}[{index}] must be a (name, transform) pair; "
                               f"found {describe(pair)}")
        name, transform = pair
        if not is_field_name(name):
            raise InvalidTerms(f"field names in {key} must be 1-{MAX_FIELD_NAME} printable "
                               f"characters without leading or trailing spaces; "
                               f"found {describe(name)}")
        if name in seen:
            raise InvalidTerms(f"{key} lists the field {name!r} more than once")
        seen.add(name)
        _check_choice(transform, TRANSFORMS, field_key(name))
    return fields


def pairs_from_list(value: object, key: str) -> tuple[tuple[str, str], ...]:
    """``[[name, transform], ...]`` from a dict form as a tuple of pairs; checked later."""
    items = _list(value, key)
    pairs = []
    for index, item in enumerate(items):
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise InvalidTerms(f"{key}[{index}] must be a [name, transform] pair; "
                               f"found {describe(item)}")
        pairs.append((item[0], item[1]))
    return tuple(pairs)


# --- structure of a document (TOML or dict form) ------------------------------------------
def as_table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        shown = f"[{where}]" if where in SECTIONS else where
        raise InvalidTerms(f"{shown} must be a table; found {describe(value)}")
    return value


def _list(value: object, key: str) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise InvalidTerms(f"{key} must be a list; found {describe(value)}")
    return tuple(value)


def exact_keys(table: Mapping[str, object], expected: Sequence[str], section: str | None) -> None:
    """Refuse unknown keys first (likely typos), then missing ones (fail closed)."""
    for key in table:
        if key not in expected:
            shown = _shown_key(key)
            if section is None:
                raise InvalidTerms(f"[{shown}] is not a section of the policy terms; "
                                   f"expected {', '.join(expected)}")
            raise InvalidTerms(f"{section}.{shown} is not a key of [{section}]; "
                               f"expected {', '.join(expected)}")
    for key in expected:
        if key not in table:
            if section is None:
                raise InvalidTerms(f"the policy terms lack the [{key}] section; "
                                   f"every section is required")
            raise InvalidTerms(f"the policy terms lack {section}.{key}; "
                               f"every key of [{section}] is required")


def _shown_key(key: object) -> str:
    """A key as the file spells it, quoted and escaped unless it is plain and short, so a
    key holding a newline or 10 000 characters still makes a one-line message."""
    text = str(key)
    if text.isprintable() and 0 < len(text) <= 64:
        return field_key(text).removeprefix("fields.")
    return ascii(text[:64]) + ("..." if len(text) > 64 else "")


# --- reading the TOML file ------------------------------------------------------------------
def parse_terms(text: str) -> Terms:
    """Terms from the text of a policy terms file; :class:`InvalidTerms` names what is wrong."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidTerms(f"the policy terms are not valid TOML: {error}") from None
    exact_keys(doc, SECTIONS, None)
    offer = as_table(doc["offer"], "offer")
    exact_keys(offer, OFFER_KEYS, "offer")
    fields = as_table(doc["fields"], "fields")
    limits = dict(as_table(doc["limits"], "limits"))
    exact_keys(limits, LIMIT_KEYS, "limits")
    for key in DURATION_KEYS:
        limits[key] = parse_duration(limits[key], key=f"limits.{key}")
    return Terms(
        purposes=_list(offer["purposes"], "offer.purposes"),
        consumer_domains=_list(offer["consumer_domains"], "offer.consumer_domains"),
        approval=offer["approval"],
        fields=tuple(fields.items()),
        limits=Limits(**limits),
    )


def load_terms(path: str | PathLike[str]) -> Terms:
    """Terms from a policy terms file; an unreadable file is refused like a bad one."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise InvalidTerms(f"cannot read the policy terms file {str(path)!r}: "
                           f"{error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidTerms(f"the policy terms file {str(path)!r} is not UTF-8 text") from None
    return parse_terms(text)


# --- whether an offer may be made at all ----------------------------------------------------
def check_classification(classification: object) -> str:
    if not isinstance(classification, str) or classification not in CLASSIFICATIONS:
        raise BadInput(f"a classification must be one of {', '.join(CLASSIFICATIONS)}; "
                       f"found {describe(classification)}")
    return classification


def check_offer(terms: Terms, dataset_fields: Sequence[str], classification: str) -> None:
    """Refuse an offer of ``terms`` over a dataset with these fields and classification.

    1. The classification must be known (:class:`BadInput` otherwise).
    2. ``core`` data never leaves the node; ``sensitive`` data needs manual approval.
    3. Every offered field must exist in the dataset.
    """
    check_classification(classification)
    if classification == "core":
        raise ClassificationRefused("core data never leaves the node: an offer of a dataset "
                                    "classified core is refused")
    if classification == "sensitive" and terms.approval != "manual":
        raise ClassificationRefused("an offer of sensitive data requires offer.approval = "
                                    f"\"manual\"; found {terms.approval!r}")
    known = set(dataset_fields)
    for name in terms.field_names:
        if name not in known:
            raise InvalidTerms(f"{field_key(name)} is not a field of the dataset; "
                               f"the dataset has {_list_names(dataset_fields)}")


def _list_names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return shown or "no fields"
