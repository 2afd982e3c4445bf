"""Transforms: masking and keyed pseudonyms with known answers, and the row projector."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from node.errors import BadInput
from policies.transforms import make_projector, mask, pseudonym, text_form

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))

TEXT_FORMS: dict[str, tuple[object, str | None]] = {
    "text stays": ("Zhang Wei", "Zhang Wei"),
    "empty text stays": ("", ""),
    "an int in decimal": (-42, "-42"),
    "a float by repr": (1.5, "1.5"),
    "a whole float keeps its point": (2.0, "2.0"),
    "true": (True, "true"),
    "false": (False, "false"),
    "a list as compact JSON": ([1, "a"], '[1,"a"]'),
    "an object with sorted keys": ({"b": 1, "a": "张"}, '{"a":"张","b":1}'),
    "a missing value stays missing": (None, None),
}


@pytest.mark.parametrize(("value", "text"), TEXT_FORMS.values(), ids=TEXT_FORMS.keys())
def test_text_form(value: object, text: str | None) -> None:
    assert text_form(value) == text


MASKS: dict[str, tuple[Any, str | None]] = {
    "a name": ("Zhang Wei", "Z*******i"),
    "three characters": ("abc", "a*c"),
    "two characters": ("Li", "**"),
    "one character": ("X", "*"),
    "empty": ("", ""),
    "Chinese characters count one each": ("张三丰", "张*丰"),
    "an int": (12345, "1***5"),
    "a negative int": (-7, "**"),
    "a float": (3.25, "3**5"),
    "a boolean": (True, "t**e"),
    "missing stays missing": (None, None),
}


@pytest.mark.parametrize(("value", "masked"), MASKS.values(), ids=MASKS.keys())
def test_mask(value: Any, masked: str | None) -> None:
    assert mask(value) == masked


PSEUDONYMS: dict[str, tuple[Any, str | None]] = {
    "a phone number": ("13800138000", "c7d2032a77221341c67ad79c9f432380"),
    "empty text": ("", "35c89f6246f9adc4075d273233889518"),
    "the int 42": (42, "60f79f1be9de834bf037b33b26a935bc"),
    "the text 42 hashes like the int": ("42", "60f79f1be9de834bf037b33b26a935bc"),
    "a name": ("Zhang Wei", "572ebe1908cbe5579df120d37a2edf8a"),
    "Chinese text as UTF-8": ("张伟", "ea611d218e536b3dec4a3573881f2485"),
    "missing stays missing": (None, None),
}


@pytest.mark.parametrize(("value", "expected"), PSEUDONYMS.values(), ids=PSEUDONYMS.keys())
def test_pseudonym_known_answers(value: Any, expected: str | None) -> None:
    assert pseudonym(KEY, value) == expected


def test_pseudonym_is_keyed_blake2b_of_the_text_form() -> None:
    reference = hashlib.blake2b(b"13800138000", key=KEY, digest_size=16,
                                person=b"ts.pseudonym.v1").hexdigest()
    assert pseudonym(KEY, "13800138000") == reference


def test_pseudonyms_are_stable_for_a_key_and_differ_across_keys() -> None:
    values = [f"1380013{i:04d}" for i in range(200)]
    first = [pseudonym(KEY, v) for v in values]
    assert first == [pseudonym(KEY, v) for v in values]
    other = [pseudonym(OTHER_KEY, v) for v in values]
    assert not set(first) & set(other)
    assert len(set(first)) == len(values)


BAD_KEYS: dict[str, object] = {
    "no key": b"",
    "15 bytes": bytes(15),
    "65 bytes": bytes(65),
    "text, not bytes": "k" * 32,
}


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_pseudonym_refuses_bad_keys(key: Any) -> None:
    with pytest.raises(BadInput, match="hash key must be 16 to 64 bytes") as caught:
        pseudonym(key, "value")
    assert "value" not in caught.value.message


UNSUPPORTED = {"bytes": b"13800138000", "a set": {1}, "an object": object()}


@pytest.mark.parametrize("value", UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_unsupported_values_are_refused_without_showing_them(value: Any) -> None:
    for transform in (mask, lambda v: pseudonym(KEY, v)):
        with pytest.raises(BadInput, match="cannot transform a value of type") as caught:
            transform(value)
        assert "13800138000" not in caught.value.message


# --- the projector ----------------------------------------------------------------------------
ROWS = [(1, "Zhang Wei", "13800138000", 10.5), (2, None, None, None), (3, "Li", 42, 0)]


def test_all_plain_returns_the_very_same_rows() -> None:
    project = make_projector(["plain", "plain", "plain", "plain"], b"")
    assert project(ROWS) is ROWS


PROJECTIONS: dict[str, tuple[list[str], list[list[Any]]]] = {
    "mask and hash": (["plain", "mask", "hash", "plain"], [
        [1, "Z*******i", "c7d2032a77221341c67ad79c9f432380", 10.5],
        [2, None, None, None],
        [3, "**", "60f79f1be9de834bf037b33b26a935bc", 0]]),
    "hash only": (["hash", "plain", "plain", "plain"], [
        [pseudonym(KEY, 1), "Zhang Wei", "13800138000", 10.5],
        [pseudonym(KEY, 2), None, None, None],
        [pseudonym(KEY, 3), "Li", 42, 0]]),
    "mask everything": (["mask"] * 4, [
        ["*", "Z*******i", "1*********0", "1**5"],
        ["*", None, None, None],
        ["*", "**", "**", "*"]]),
}


@pytest.mark.parametrize(("transforms", "expected"), PROJECTIONS.values(),
                         ids=PROJECTIONS.keys())
def test_projector_applies_transforms(transforms: list[str], expected: list[list[Any]]) -> None:
    rows = list(ROWS)
    assert make_projector(transforms, KEY)(rows) == expected
    assert rows == ROWS, "the input rows are left alone"


def test_projector_of_no_rows() -> None:
    assert make_projector(["mask"], KEY)([]) == []


PROJECTOR_REFUSALS: dict[str, tuple[list[str], bytes, str]] = {
    "an unknown transform": (["plain", "encrypt"], KEY, "transform 1 must be one of"),
    "a hash without a usable key": (["hash"], b"short", "hash key must be 16 to 64 bytes"),
}


@pytest.mark.parametrize(("transforms", "key", "fragment"), PROJECTOR_REFUSALS.values(),
                         ids=PROJECTOR_REFUSALS.keys())
def test_make_projector_refuses(transforms: list[str], key: bytes, fragment: str) -> None:
    with pytest.raises(BadInput, match=fragment):
        make_projector(transforms, key)


def test_the_key_is_needed_only_for_hashing() -> None:
    assert make_projector(["mask", "plain"], b"")([("abc", 1)]) == [["a*c", 1]]
