"""Policy terms: the PRODUCT.md file parses; every mistake is refused naming its key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from node.errors import BadInput, ClassificationRefused, InvalidTerms
from policies.terms import (
    CLASSIFICATIONS,
    LIMIT_KEYS,
    OFFER_KEYS,
    Limits,
    Terms,
    check_offer,
    load_terms,
    parse_terms,
)
from tests.unit.policies.examples import EXAMPLE, LINES, adding, with_line, without_line

DAY = 86_400
EXPECTED = Terms(
    purposes=("credit-scoring",),
    consumer_domains=("finance.qingdao",),
    approval="auto",
    fields=(("company_id", "plain"), ("legal_person", "mask"), ("phone", "hash"),
            ("revenue", "plain")),
    limits=Limits(max_deliveries=24, period=DAY, retention=7 * DAY, max_reads=10,
                  valid_for=90 * DAY, onward_transfer=False),
)


def test_the_example_of_product_md_parses() -> None:
    terms = parse_terms(EXAMPLE)
    assert terms == EXPECTED
    assert terms.field_names == ("company_id", "legal_person", "phone", "revenue")


def test_load_terms_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    assert load_terms(path) == EXPECTED
    assert load_terms(str(path)) == EXPECTED


GOOD_VARIANTS = {
    "several purposes and domains": (
        with_line("offer.purposes", '["credit-scoring", "risk.review_2"]'),
        lambda t: t.purposes == ("credit-scoring", "risk.review_2")),
    "manual approval": (
        with_line("offer.approval", '"manual"'), lambda t: t.approval == "manual"),
    "onward transfer allowed": (
        with_line("limits.onward_transfer", "true"), lambda t: t.limits.onward_transfer),
    "a quoted field name keeps its spaces and order": (
        adding("fields", '"company name" = "mask"'),
        lambda t: t.fields[0] == ("company name", "mask")),
    "a non-ASCII field name": (
        adding("fields", '"企业名称" = "plain"'), lambda t: t.field_names[0] == "企业名称"),
    "durations in other units": (
        with_line("limits.period", '"90m"'), lambda t: t.limits.period == 5_400),
}


@pytest.mark.parametrize(("text", "holds"), GOOD_VARIANTS.values(), ids=GOOD_VARIANTS.keys())
def test_variants_parse(text: str, holds: Any) -> None:
    assert holds(parse_terms(text))


def _refusals() -> dict[str, tuple[str, str]]:
    """Named bad files and a fragment the message must contain (usually the key)."""
    cases: dict[str, tuple[str, str]] = {
        "not TOML": ("[offer\npurposes = 1", "not valid TOML"),
        "a duplicate key is a TOML error": (adding("limits", "max_reads = 3"), "not valid TOML"),
        "an empty file": ("", "lack the [offer] section"),
        "an unknown section": (EXAMPLE + "\n[extra]\nx = 1\n", "[extra] is not a section"),
        "an unknown top-level key": ("version = 1\n" + EXAMPLE, "[version] is not a section"),
        "offer is a value": ("offer = 1\n[fields]" + EXAMPLE.split("[fields]")[1],
                             "[offer] must be a table; found the number 1"),
        "limits is a list": ("limits = [1]\n" + EXAMPLE.split("[limits]")[0],
                             "[limits] must be a table; found a list"),
        "a section missing: offer": ("[fields]" + EXAMPLE.split("[fields]")[1],
                                     "lack the [offer] section"),
        "a section missing: fields": (EXAMPLE.split("[fields]")[0] + "[limits]"
                                      + EXAMPLE.split("[limits]")[1],
                                      "lack the [fields] section"),
        "a section missing: limits": (EXAMPLE.split("[limits]")[0],
                                      "lack the [limits] section"),
        "offer.purposes is text": (with_line("offer.purposes", '"credit-scoring"'),
                                   "offer.purposes must be a list"),
        "offer.purposes is empty": (with_line("offer.purposes", "[]"),
                                    "offer.purposes must list at least one"),
        "offer.purposes holds a number": (with_line("offer.purposes", "[1]"),
                                          "offer.purposes[0]"),
        "offer.purposes holds spaces": (with_line("offer.purposes", '["credit scoring"]'),
                                        "offer.purposes[0]"),
        "offer.purposes repeats": (with_line("offer.purposes", '["a", "b", "a"]'),
                                   "offer.purposes lists 'a' more than once"),
        "offer.consumer_domains is text": (
            with_line("offer.consumer_domains", '"finance.qingdao"'),
            "offer.consumer_domains must be a list"),
        "offer.consumer_domains is empty": (with_line("offer.consumer_domains", "[]"),
                                            "offer.consumer_domains must list at least one"),
        "offer.consumer_domains upper case": (
            with_line("offer.consumer_domains", '["Finance.Qingdao"]'),
            "offer.consumer_domains[0]"),
        "offer.consumer_domains wildcard": (
            with_line("offer.consumer_domains", '["*.qingdao"]'), "offer.consumer_domains[0]"),
        "offer.consumer_domains repeats": (
            with_line("offer.consumer_domains", '["a.b", "a.b"]'), "more than once"),
        "offer.approval unknown": (with_line("offer.approval", '"automatic"'),
                                   "offer.approval must be one of auto, manual"),
        "offer.approval a boolean": (with_line("offer.approval", "true"),
                                     "offer.approval must be one of auto, manual; "
                                     "found the boolean true"),
        "offer: an unknown key": (adding("offer", 'purpose = "x"'),
                                  "offer.purpose is not a key of [offer]"),
        "fields: none": (EXAMPLE.replace(LINES["fields.company_id"], "").replace(
            LINES["fields.legal_person"], "").replace(LINES["fields.phone"], "").replace(
            LINES["fields.revenue"], ""), "fields must list at least one field"),
        "fields: an unknown transform": (with_line("fields.phone", '"sha256"'),
                                         "fields.phone must be one of plain, mask, hash"),
        "fields: a transform in capitals": (with_line("fields.phone", '"HASH"'),
                                            "fields.phone must be one of"),
        "fields: a number as transform": (with_line("fields.phone", "1"),
                                          "fields.phone must be one of"),
        "fields: a dotted key": (adding("fields", 'a.b = "plain"'), "fields.a must be one of"),
        "fields: a quoted name with a bad transform": (
            adding("fields", '"a b" = "x"'), 'fields."a b" must be one of'),
        "fields: an empty name": (adding("fields", '"" = "plain"'), "field names in fields"),
        "fields: a name with outer spaces": (adding("fields", '" x" = "plain"'),
                                             "field names in fields"),
        "fields: a name with a control character": (adding("fields", '"a\\tb" = "plain"'),
                                                    "field names in fields"),
        "limits: an unknown key": (adding("limits", "max_read = 3"),
                                   "limits.max_read is not a key of [limits]"),
        "limits.onward_transfer as text": (with_line("limits.onward_transfer", '"false"'),
                                           "limits.onward_transfer must be true or false"),
        "limits.onward_transfer as a number": (with_line("limits.onward_transfer", "0"),
                                               "limits.onward_transfer must be true or false"),
    }
    for key in ("max_deliveries", "max_reads"):
        for name, value in {"zero": "0", "negative": "-1", "a boolean": "true",
                            "text": '"24"', "a float": "24.0", "too large": str(2**31)}.items():
            cases[f"limits.{key} {name}"] = (with_line(f"limits.{key}", value),
                                             f"limits.{key} must be a whole number")
    for key in ("period", "retention", "valid_for"):
        for name, value in {"a number": "7", "a bare number as text": '"7"', "zero": '"0d"',
                            "with a space": '"7 d"', "a boolean": "true",
                            "weeks": '"1w"'}.items():
            cases[f"limits.{key} {name}"] = (with_line(f"limits.{key}", value),
                                             f"limits.{key} must be a duration")
    for key in OFFER_KEYS:
        cases[f"offer.{key} missing"] = (without_line(f"offer.{key}"),
                                         f"lack offer.{key}")
    for key in LIMIT_KEYS:
        cases[f"limits.{key} missing"] = (without_line(f"limits.{key}"),
                                          f"lack limits.{key}")
    return cases


REFUSALS = _refusals()


@pytest.mark.parametrize(("text", "fragment"), REFUSALS.values(), ids=REFUSALS.keys())
def test_parse_terms_refuses(text: str, fragment: str) -> None:
    with pytest.raises(InvalidTerms) as caught:
        parse_terms(text)
    assert fragment in caught.value.message
    assert caught.value.kind == "bad_input"
    assert "\n" not in caught.value.message.rstrip(), "one sentence, one line"


UNREADABLE = {
    "missing file": lambda tmp: tmp / "absent.toml",
    "a directory": lambda tmp: tmp,
    "not UTF-8": lambda tmp: _write(tmp / "latin1.toml", EXAMPLE.encode() + b"# \xe9\n"),
    "syntax error in a file": lambda tmp: _write(tmp / "bad.toml", b"[offer"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_load_terms_refuses(tmp_path: Path, make: Any) -> None:
    with pytest.raises(InvalidTerms):
        load_terms(make(tmp_path))


# --- the dict form ----------------------------------------------------------------------------
def _json_safe(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_safe(v) for v in value)
    return isinstance(value, (str, int, bool))


def test_to_dict_is_json_safe_and_keeps_field_order() -> None:
    data = EXPECTED.to_dict()
    assert _json_safe(data)
    assert data == {
        "offer": {"purposes": ["credit-scoring"], "consumer_domains": ["finance.qingdao"],
                  "approval": "auto"},
        "fields": [["company_id", "plain"], ["legal_person", "mask"], ["phone", "hash"],
                   ["revenue", "plain"]],
        "limits": {"max_deliveries": 24, "period": DAY, "retention": 7 * DAY, "max_reads": 10,
                   "valid_for": 90 * DAY, "onward_transfer": False},
    }
    assert json.loads(json.dumps(data, sort_keys=True)) == data


ROUND_TRIPS = {
    "the example": EXPECTED,
    "manual, onward transfer, many fields": dataclasses.replace(
        EXPECTED, approval="manual", purposes=("a", "b"),
        fields=tuple((f"f{i}", ("plain", "mask", "hash")[i % 3]) for i in range(9)),
        limits=dataclasses.replace(EXPECTED.limits, onward_transfer=True, period=1)),
}


@pytest.mark.parametrize("terms", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_dict_round_trip(terms: Terms) -> None:
    assert Terms.from_dict(terms.to_dict()) == terms
    assert Terms.from_dict(json.loads(json.dumps(terms.to_dict()))) == terms


def _edited(edit: Any) -> dict[str, Any]:
    data = EXPECTED.to_dict()
    edit(data)
    return data


DICT_REFUSALS: dict[str, tuple[object, str]] = {
    "not a dict": ([], "the policy terms must be a table"),
    "an extra section": (_edited(lambda d: d.update(extra={})), "[extra] is not a section"),
    "a missing section": (_edited(lambda d: d.pop("limits")), "lack the [limits] section"),
    "offer not a dict": (_edited(lambda d: d.update(offer=[])), "[offer] must be a table"),
    "an extra offer key": (_edited(lambda d: d["offer"].update(x=1)), "offer.x is not a key"),
    "purposes as text": (_edited(lambda d: d["offer"].update(purposes="a")),
                         "offer.purposes must be a list"),
    "fields as an object loses order": (
        _edited(lambda d: d.update(fields={"a": "plain"})), "fields must be a list"),
    "a field pair of three": (_edited(lambda d: d["fields"].append(["a", "plain", "x"])),
                              "fields[4] must be a [name, transform] pair"),
    "a field as text": (_edited(lambda d: d["fields"].append("a")), "fields[4]"),
    "a repeated field": (_edited(lambda d: d["fields"].append(["phone", "plain"])),
                         "fields lists the field 'phone' more than once"),
    "no fields": (_edited(lambda d: d.update(fields=[])), "fields must list at least one"),
    "a duration as text": (_edited(lambda d: d["limits"].update(retention="7d")),
                           "limits.retention must be a whole number of seconds"),
    "a duration of zero": (_edited(lambda d: d["limits"].update(period=0)), "limits.period"),
    "a count as a boolean": (_edited(lambda d: d["limits"].update(max_reads=True)),
                             "limits.max_reads must be a whole number"),
    "onward transfer as a number": (_edited(lambda d: d["limits"].update(onward_transfer=0)),
                                    "limits.onward_transfer must be true or false"),
    "a missing limit": (_edited(lambda d: d["limits"].pop("valid_for")),
                        "lack limits.valid_for"),
    "an extra limit": (_edited(lambda d: d["limits"].update(max_bytes=1)),
                       "limits.max_bytes is not a key"),
}


@pytest.mark.parametrize(("data", "fragment"), DICT_REFUSALS.values(), ids=DICT_REFUSALS.keys())
def test_from_dict_refuses(data: object, fragment: str) -> None:
    with pytest.raises(InvalidTerms) as caught:
        Terms.from_dict(data)
    assert fragment in caught.value.message


CONSTRUCTOR_REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "purposes as a list, not a tuple": ({"purposes": ["a"]}, "offer.purposes must be a list"),
    "a field pair as a list": ({"fields": (["a", "plain"],)}, "fields[0]"),
    "limits as a dict": ({"limits": {}}, "limits must be a Limits"),
}


@pytest.mark.parametrize(("change", "fragment"), CONSTRUCTOR_REFUSALS.values(),
                         ids=CONSTRUCTOR_REFUSALS.keys())
def test_constructor_validates(change: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidTerms, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        dataclasses.replace(EXPECTED, **change)


# --- whether an offer may be made ------------------------------------------------------------
DATASET = ["company_id", "legal_person", "phone", "revenue", "address"]
MANUAL = dataclasses.replace(EXPECTED, approval="manual")

ALLOWED_OFFERS = {
    "public, auto": (EXPECTED, "public"),
    "internal, auto": (EXPECTED, "internal"),
    "sensitive, manual": (MANUAL, "sensitive"),
    "public, manual": (MANUAL, "public"),
}


@pytest.mark.parametrize(("terms", "level"), ALLOWED_OFFERS.values(), ids=ALLOWED_OFFERS.keys())
def test_check_offer_allows(terms: Terms, level: str) -> None:
    check_offer(terms, DATASET, level)


REFUSED_OFFERS: dict[str, tuple[Terms, list[str], str, type[Exception], str]] = {
    "core, auto": (EXPECTED, DATASET, "core", ClassificationRefused,
                   "core data never leaves the node"),
    "core, even manual": (MANUAL, DATASET, "core", ClassificationRefused,
                          "core data never leaves the node"),
    "sensitive, auto": (EXPECTED, DATASET, "sensitive", ClassificationRefused,
                        'requires offer.approval = "manual"'),
    "unknown classification": (EXPECTED, DATASET, "secret", BadInput,
                               "one of public, internal, sensitive, core"),
    "classification in capitals": (EXPECTED, DATASET, "PUBLIC", BadInput, "found the text"),
    "a field the dataset lacks": (EXPECTED, ["company_id", "phone", "revenue"], "public",
                                  InvalidTerms, "fields.legal_person is not a field"),
}


@pytest.mark.parametrize(("terms", "dataset", "level", "error", "fragment"),
                         REFUSED_OFFERS.values(), ids=REFUSED_OFFERS.keys())
def test_check_offer_refuses(terms: Terms, dataset: list[str], level: str,
                             error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as caught:
        check_offer(terms, dataset, level)
    assert type(caught.value) is error
    assert fragment in str(caught.value)


def test_classifications_are_the_four_levels() -> None:
    assert CLASSIFICATIONS == ("public", "internal", "sensitive", "core")
