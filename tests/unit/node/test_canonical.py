"""The bytes that get signed: canonical JSON and the DSSE pre-authentication encoding.

The vectors below were computed once with a fixed Ed25519 seed and pasted as literals, so
any change to the encoding — key order, escaping, separators, the PAE layout, the type
prefix — fails here before it silently breaks every signature peers already hold.
See docs/adr/0001-canonical-encoding.md.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from node.canonical import b64, canonical_json, parse_canonical, signing_bytes, unb64
from node.errors import BadSignature, MalformedMessage
from node.identity import NodeKeys, node_id_of, verify_signature

SEED = bytes(range(32))
VERIFY_KEY_HEX = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
NODE_ID = "n56475aa75463474c0285df5dbf2bcab7"


def fixed_keys() -> NodeKeys:
    return NodeKeys(SigningKey(SEED), PrivateKey(bytes(range(32, 64))), bytes(range(64, 96)))


# (document type, document, canonical bytes, signing bytes, Ed25519 signature hex)
VECTORS: dict[str, tuple[str, dict[str, Any], bytes, bytes, str]] = {
    "agreement-like document: nested, sorted, integers, null and false": (
        "agreement",
        {"agreement_id": "agr-1",
         "terms": {"purpose": "credit-scoring",
                   "fields": [["company_id", "plain"], ["phone", "hash"]],
                   "max_reads": 10, "onward_transfer": False},
         "created_at": 1700000000000, "expires_at": None},
        b'{"agreement_id":"agr-1","created_at":1700000000000,"expires_at":null,"terms":'
        b'{"fields":[["company_id","plain"],["phone","hash"]],"max_reads":10,'
        b'"onward_transfer":false,"purpose":"credit-scoring"}}',
        b'DSSEv1 20 trustspace.agreement 196 {"agreement_id":"agr-1","created_at":1700000000000,'
        b'"expires_at":null,"terms":{"fields":[["company_id","plain"],["phone","hash"]],'
        b'"max_reads":10,"onward_transfer":false,"purpose":"credit-scoring"}}',
        "ad465cf2835794d00f9581e180013bd4879eb962317b9fd1e0d8581d48755c95"
        "c5214aa24356dc8fe9c88d412e7143689befa2a6f082a4fd56173406de147806",
    ),
    "text: raw UTF-8, controls escaped in lower-case hex, slash not escaped": (
        "node-card",
        {"name": "青岛 data", "controls": "tab\there\nnl\x00\x1f", "quote": "\"\\/",
         "emoji": "😀", "line_sep": "\u2028"},
        b'{"controls":"tab\\there\\nnl\\u0000\\u001f","emoji":"\xf0\x9f\x98\x80",'
        b'"line_sep":"\xe2\x80\xa8","name":"\xe9\x9d\x92\xe5\xb2\x9b data","quote":"\\"\\\\/"}',
        b'DSSEv1 20 trustspace.node-card 109 {"controls":"tab\\there\\nnl\\u0000\\u001f",'
        b'"emoji":"\xf0\x9f\x98\x80","line_sep":"\xe2\x80\xa8",'
        b'"name":"\xe9\x9d\x92\xe5\xb2\x9b data","quote":"\\"\\\\/"}',
        "9a3d31ec1bbaa620547370b122ed18fc46cb0c4a03f38e342f04a325fe40142e"
        "69f958d48c226f014f8b3b4833b39d3cec6ac77e250f259d4c07532f0ea08506",
    ),
    "key order: by Unicode code point, so U+FFFF sorts before an emoji": (
        "order",
        {"b": 1, "a": 2, "B": 3, "é": 4, "aa": 5, "😀": 6, "\uffff": 7, "": 8},
        b'{"":8,"B":3,"a":2,"aa":5,"b":1,"\xc3\xa9":4,"\xef\xbf\xbf":7,"\xf0\x9f\x98\x80":6}',
        b'DSSEv1 16 trustspace.order 55 '
        b'{"":8,"B":3,"a":2,"aa":5,"b":1,"\xc3\xa9":4,"\xef\xbf\xbf":7,"\xf0\x9f\x98\x80":6}',
        "740d08619b95a8d1cede59c6a75ffb9de4525a047ceb04da49a3bf8c2c19384a"
        "3d2b13125b3cbd58e6c337da3b831c70253f9893c18da89f9990b3d37ab93b06",
    ),
    "edges: empty containers, literals, an integer beyond 2**53": (
        "edge",
        {"empty_list": [], "empty_obj": {}, "neg": -9007199254740993, "zero": 0, "t": True,
         "f": False, "n": None},
        b'{"empty_list":[],"empty_obj":{},"f":false,"n":null,"neg":-9007199254740993,'
        b'"t":true,"zero":0}',
        b'DSSEv1 15 trustspace.edge 93 {"empty_list":[],"empty_obj":{},"f":false,"n":null,'
        b'"neg":-9007199254740993,"t":true,"zero":0}',
        "04d59231a457077335e059ce5e805b2190180fefc788640fed795105a796aaa8"
        "30df43f84861b2148e8f4184f18df169af45fee66225c133761352df4795440d",
    ),
}


def test_the_fixed_seed_gives_the_fixed_key_and_node_id() -> None:
    keys = fixed_keys()
    assert keys.verify_key.hex() == VERIFY_KEY_HEX
    assert keys.node_id == NODE_ID == node_id_of(bytes.fromhex(VERIFY_KEY_HEX))


@pytest.mark.parametrize(("doc_type", "document", "canonical", "signed", "signature"),
                         list(VECTORS.values()), ids=list(VECTORS))
def test_vectors(doc_type: str, document: dict[str, Any], canonical: bytes, signed: bytes,
                 signature: str) -> None:
    assert canonical_json(document) == canonical
    assert signing_bytes(doc_type, canonical) == signed
    keys = fixed_keys()
    assert keys.sign(doc_type, canonical).hex() == signature
    assert parse_canonical(canonical) == document
    verify_signature(keys.verify_key, doc_type, canonical, bytes.fromhex(signature),
                     what="the vector")


@pytest.mark.parametrize(("doc_type", "document", "canonical", "signed", "signature"),
                         list(VECTORS.values()), ids=list(VECTORS))
def test_a_signature_binds_its_document_type(doc_type: str, document: dict[str, Any],
                                             canonical: bytes, signed: bytes,
                                             signature: str) -> None:
    with pytest.raises(BadSignature, match="does not verify"):
        verify_signature(fixed_keys().verify_key, doc_type + "x", canonical,
                         bytes.fromhex(signature), what="the vector")


def test_signing_bytes_count_bytes_not_characters() -> None:
    assert signing_bytes("t", "é".encode()) == b"DSSEv1 12 trustspace.t 2 \xc3\xa9"
    assert signing_bytes("t", b"") == b"DSSEv1 12 trustspace.t 0 "


def test_the_same_document_in_any_key_order_has_one_encoding() -> None:
    forward = {"a": 1, "b": {"x": [1, 2], "y": None}}
    backward = {"b": {"y": None, "x": [1, 2]}, "a": 1}
    assert canonical_json(forward) == canonical_json(backward) == \
        b'{"a":1,"b":{"x":[1,2],"y":null}}'


def _nested(inner: list[object], depth: int) -> list[object]:
    for _ in range(depth):
        inner = [inner]
    return inner


def _holding_itself() -> list[object]:
    cycle: list[object] = [1]
    cycle.append(cycle)
    return cycle


CANONICAL_REFUSALS: dict[str, tuple[object, str]] = {
    "float": ({"a": 1.5}, r"document\.a is a float"),
    "float that looks whole": ({"a": 1.0}, "is a float"),
    "float inside a list": ({"a": [1, 2.5]}, r"document\.a\[1\] is a float"),
    "nan": ({"a": math.nan}, "is a float"),
    "infinity": ({"a": math.inf}, "is a float"),
    "integer key": ({1: "a"}, "non-text key"),
    "tuple key": ({("a",): 1}, "non-text key"),
    "nested integer key": ({"a": {2: "b"}}, "document.a has a non-text key"),
    "bytes value": ({"a": b"x"}, "type bytes, not JSON"),
    "tuple value": ({"a": (1, 2)}, "type tuple, not JSON"),
    "set value": ({"a": {1}}, "type set, not JSON"),
    "lone surrogate": ({"a": "\ud800"}, "not valid Unicode"),
    "lone surrogate in a key": ({"\udfff": 1}, "not valid Unicode"),
    "float 150 levels down": ({"a": _nested([1.5], 150)}, r"document\.a(\[0\]){150}\[0\] is a"),
    "nested 5000 levels": ({"a": _nested([], 5000)}, "nested too deeply"),
    "a list that holds itself": ({"a": _holding_itself()}, "nested too deeply"),
}


@pytest.mark.parametrize(("value", "message"), list(CANONICAL_REFUSALS.values()),
                         ids=list(CANONICAL_REFUSALS))
def test_canonical_json_refuses_what_has_no_canonical_form(value: object, message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        canonical_json(value)


def _reference_canonical_json(value: object) -> bytes:
    """canonical_json as first written: a recursive check naming the path, then json.dumps."""
    def check(value: object, path: str) -> None:
        if value is None or isinstance(value, (bool, int, str)):
            return
        if isinstance(value, float):
            raise MalformedMessage(f"{path} is a float; signed documents carry integers only")
        if isinstance(value, list):
            for i, item in enumerate(value):
                check(item, f"{path}[{i}]")
            return
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise MalformedMessage(f"{path} has a non-text key")
                check(item, f"{path}.{key}")
            return
        raise MalformedMessage(f"{path} has a value of type {type(value).__name__}, not JSON")

    try:
        check(value, "document")
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedMessage("the document has text that is not valid Unicode "
                               "(a lone surrogate)") from None


class _Text(str):
    pass


ACCEPTED_BEYOND_THE_FAST_WALK: dict[str, tuple[object, bytes]] = {
    "a subclass of str": ({"a": _Text("x")}, b'{"a":"x"}'),
    "an ordered dict": ({"a": OrderedDict(b=1)}, b'{"a":{"b":1}}'),
    "2000 objects in a list": ({"a": [{}] * 2000}, b'{"a":[' + b",".join([b"{}"] * 2000) + b"]}"),
    "nested 150 levels": (_nested([], 150), b"[" * 151 + b"]" * 151),
}


@pytest.mark.parametrize(("value", "encoded"), list(ACCEPTED_BEYOND_THE_FAST_WALK.values()),
                         ids=list(ACCEPTED_BEYOND_THE_FAST_WALK))
def test_documents_the_fast_walk_passes_on_are_still_encoded(value: object,
                                                             encoded: bytes) -> None:
    assert canonical_json(value) == encoded == _reference_canonical_json(value)


_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=4) \
    | st.floats(allow_nan=True) | st.binary(max_size=2)
_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner)
    | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), inner, max_size=4),
    max_leaves=30)


@settings(max_examples=300)
@given(_values)
def test_canonical_json_decides_as_the_first_recursive_version(value: object) -> None:
    _decides_as_the_reference(value)


def _decides_as_the_reference(value: object) -> None:
    try:
        expected: bytes | str = _reference_canonical_json(value)
    except MalformedMessage as e:
        expected = e.message
    try:
        got: bytes | str = canonical_json(value)
    except MalformedMessage as e:
        got = e.message
    assert got == expected


_any_text = st.text(st.characters(exclude_categories=()), max_size=6)  # lone surrogates too
_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-2**64, 2**64) | _any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_any_text, inner, max_size=3),
    max_leaves=12)


@given(_documents)
def test_canonical_json_writes_what_the_standard_encoder_writes(value: object) -> None:
    """The fast encoder (orjson) gives the standard one's bytes for every code point and
    every integer, and refuses a lone surrogate as it does."""
    _decides_as_the_reference(value)


PARSE_REFUSALS: dict[str, tuple[bytes, str]] = {
    "white space after a colon": (b'{"a": 1}', "not in canonical JSON form"),
    "trailing newline": (b'{"a":1}\n', "not in canonical JSON form"),
    "keys out of order": (b'{"b":1,"a":2}', "not in canonical JSON form"),
    "duplicate key": (b'{"a":1,"a":1}', "not in canonical JSON form"),
    "escaped non-ASCII": (b'{"a":"\\u00e9"}', "not in canonical JSON form"),
    "escaped slash": (b'{"a":"\\/"}', "not in canonical JSON form"),
    "upper-case hex escape": (b'{"a":"\\u001F"}', "not in canonical JSON form"),
    "float": (b'{"a":1.0}', "is a float"),
    "exponent": (b'{"a":1e2}', "is a float"),
    "NaN literal": (b'{"a":NaN}', "is a float"),
    "negative zero float": (b'{"a":-0.0}', "is a float"),
    "leading zero": (b'{"a":01}', "not valid UTF-8 JSON"),
    "array at the top": (b"[1,2]", "not a JSON object"),
    "string at the top": (b'"a"', "not a JSON object"),
    "not JSON": (b"card", "not valid UTF-8 JSON"),
    "empty": (b"", "not valid UTF-8 JSON"),
    "not UTF-8": (b'{"a":"\xff"}', "not valid UTF-8 JSON"),
    "byte order mark": (b'\xef\xbb\xbf{"a":1}', "not valid UTF-8 JSON"),
    "escaped lone surrogate": (b'{"a":"\\ud800"}', "not valid Unicode"),
    "nested too deeply": (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "too deeply"),
}


@pytest.mark.parametrize(("payload", "message"), list(PARSE_REFUSALS.values()),
                         ids=list(PARSE_REFUSALS))
def test_parse_canonical_refuses_other_spellings(payload: bytes, message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        parse_canonical(payload)


def test_parse_canonical_names_what_it_parsed() -> None:
    with pytest.raises(MalformedMessage, match="^the audit entry is not a JSON object$"):
        parse_canonical(b"[]", what="audit entry")


B64_REFUSALS: dict[str, tuple[object, int | None, str]] = {
    "not base64": ("not base64!", None, "the key is not valid base64"),
    "white space inside": ("AAEC AwQ=", None, "not valid base64"),
    "missing padding": ("AAE", None, "not valid base64"),
    "non-ASCII": ("AAé=", None, "not valid base64"),
    "too short": (b64(bytes(31)), 32, "the key must be 32 bytes, found 31"),
    "too long": (b64(bytes(33)), 32, "the key must be 32 bytes, found 33"),
    "a number where text belongs": (5, None, "the key is not base64 text"),
    "null where text belongs": (None, 32, "the key is not base64 text"),
}


@pytest.mark.parametrize(("text", "size", "message"), list(B64_REFUSALS.values()),
                         ids=list(B64_REFUSALS))
def test_unb64_refusals(text: object, size: int | None, message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        unb64(text, what="the key", size=size)  # type: ignore[arg-type]


def test_unb64_round_trip() -> None:
    assert unb64(b64(SEED), what="seed", size=32) == SEED
