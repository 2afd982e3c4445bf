"""The auditor's parser of entry bodies decides exactly as ``json.loads`` then ``json.dumps``.

``parse_body`` keeps one decoder and one encoder instead of building them per entry; every
body, canonical or not, must get the same answer (the value, or the same refusal) as the
straightforward version it replaced. ``is_canonical_body``, which says only whether a body
would be taken, must say yes exactly when it would be.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.auditor.facts import NotCanonical, _no_float, is_canonical_body, parse_body


def reference(data: bytes) -> dict[str, Any]:
    """parse_body as first written."""
    try:
        value = json.loads(data, parse_float=_no_float, parse_constant=_no_float)
        again = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           allow_nan=False).encode("utf-8")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise NotCanonical("its body is not JSON without floats") from None
    if not isinstance(value, dict):
        raise NotCanonical("its body is not a JSON object")
    if again != data:
        raise NotCanonical("its body is not in canonical JSON form (key order, spacing, "
                           "escapes or a repeated key)")
    return value


def outcome(parse: Any, data: bytes) -> object:
    try:
        return parse(data)
    except NotCanonical as e:
        return f"refused: {e}"


BODIES: dict[str, bytes] = {
    "canonical": b'{"a":[1,"x",null,true],"b":{"c":-2}}',
    "non-ASCII text": '{"a":"é€😀"}'.encode(),
    "empty object": b"{}",
    "keys out of order": b'{"b":1,"a":2}',
    "a space": b'{"a": 1}',
    "a repeated key": b'{"a":1,"a":1}',
    "a float": b'{"a":1.5}',
    "an exponent": b'{"a":1e3}',
    "NaN": b'{"a":NaN}',
    "Infinity": b'{"a":-Infinity}',
    "an escaped non-ASCII letter": b'{"a":"\\u00e9"}',
    "an escaped lone surrogate": b'{"a":"\\ud800"}',
    "a lone surrogate in UTF-8": b'{"a":"\xed\xa0\x80"}',
    "not UTF-8": b'{"a":"\xff"}',
    "a UTF-8 byte order mark": b'\xef\xbb\xbf{"a":1}',
    "UTF-16 with a byte order mark": '{"a":1}'.encode("utf-16"),
    "UTF-16 without one": '{"a":1}'.encode("utf-16-le"),
    "UTF-32": '{"a":1}'.encode("utf-32"),
    "a list": b"[1,2]",
    "text": b'"a"',
    "trailing data": b'{"a":1}x',
    "a second object": b'{"a":1}{"b":2}',
    "a trailing space": b'{"a":1} ',
    "a trailing newline": b'{"a":1}\n',
    "a leading space": b' {"a":1}',
    "cut short": b'{"a":1',
    "empty": b"",
    "nested 100000 deep": b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "minus zero": b'{"a":-0}',
    "minus zero in a list": b'{"a":[1,-0]}',
    "a negative number": b'{"a":-10}',
    "a tab": b'{"a":\t1}',
    "a space in a list": b'{"a":[1, 2]}',
    "a space inside text": b'{"a b":"c d"}',
    "braces and colons inside text": b'{"a":"{:}","b":"}{","c":"[-0 ]"}',
    "a colon after a value": b'{"a":"x":1}',
    "keys that start with a colon": b'{":":null,":a":"::"}',
    "a repeated key that starts with a colon": b'{":":1,":":1}',
    "an escaped quote before a colon": b'{"a":"{\\":}","b":"}{"}',
    "quotes escaped inside text": b'{"a":"x\\"y"}',
    "an inner object in order": b'{"a":{"b":1,"c":[true,false]}}',
    "an inner object out of order": b'{"a":{"c":1,"b":2}}',
    "an object in a list out of order": b'{"a":[{"c":1,"b":2}]}',
    "a repeated key with the same value": b'{"a":"x","a":"x"}',
    "a repeated key between others": b'{"a":1,"b":2,"a":1}',
    "a key that only differs in case": b'{"B":1,"a":2}',
    "keys of other scripts in order": '{"z":1,"é":2,"😀":3}'.encode(),
    "keys of other scripts out of order": '{"é":1,"z":2}'.encode(),
    "an empty key": b'{"":1}',
    "literals": b'{"a":null,"b":true,"c":false}',
    "a very long number": b'{"a":' + b"9" * 5000 + b"}",
    "DEL inside text": b'{"a":"\x7f"}',
    "a control character inside text": b'{"a":"\x01"}',
}


@pytest.mark.parametrize("data", list(BODIES.values()), ids=list(BODIES))
def test_a_body_gets_the_answer_of_the_first_version(data: bytes) -> None:
    assert outcome(parse_body, data) == outcome(reference, data)
    assert is_canonical_body(data) is isinstance(outcome(reference, data), dict)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=12)


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=4), _json, max_size=4), st.sampled_from([
    {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False},
    {"sort_keys": False, "separators": (",", ":"), "ensure_ascii": False},
    {"sort_keys": True, "separators": (", ", ": "), "ensure_ascii": False},
    {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": True},
]), st.sampled_from(["utf-8", "utf-16", "utf-8-sig"]))
def test_any_spelling_gets_the_answer_of_the_first_version(value: dict[str, Any],
                                                           spelling: dict[str, Any],
                                                           encoding: str) -> None:
    data = json.dumps(value, **spelling).encode(encoding, "surrogatepass")
    assert outcome(parse_body, data) == outcome(reference, data)
    assert is_canonical_body(data) is isinstance(outcome(reference, data), dict)


@settings(max_examples=500)
@given(st.dictionaries(st.text(max_size=4), _json, min_size=1, max_size=4), st.data())
def test_a_damaged_body_gets_the_answer_of_the_first_version(value: dict[str, Any],
                                                             data: st.DataObject) -> None:
    body = json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8", "surrogatepass")
    at = data.draw(st.integers(0, len(body)), label="at")
    cut = data.draw(st.integers(0, 2), label="cut")
    new = data.draw(st.sampled_from([b"", b" ", b'"', b"\\", b"-", b"0", b"{", b"}", b":",
                                     b",", b"[", b'"a":1,', b"\x00", b"\xff"]), label="new")
    damaged = body[:at] + new + body[at + cut:]
    assert outcome(parse_body, damaged) == outcome(reference, damaged)
    assert is_canonical_body(damaged) is isinstance(outcome(reference, damaged), dict)
