"""Hypothesis strategies for hostile input, and the one assertion every case ends with.

A hostile value is what a careless operator or a misbehaving peer could put where a good
one belongs: text with path separators, control characters, look-alike letters, lone
surrogates or 10 000 characters; integers just past 63 or 64 bits; values of the wrong JSON
type; nesting where a flat value belongs. :func:`mutations` changes one place of a valid
document to such a value (or removes it, or adds a key), so a case gets past the first
checks and reaches the deeper ones.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from node.canonical import canonical_json
from node.errors import MalformedMessage, TrustspaceError

T = TypeVar("T")
SCALE = float(os.environ.get("TRUSTSPACE_FUZZ_SCALE", "1"))
"""Multiplies every property's example count: 1 keeps the suite fast (make test); a deeper
hunt runs with e.g. TRUSTSPACE_FUZZ_SCALE=20."""


def examples(count: int) -> settings:
    """Settings for a hostile property: ``count`` examples (times SCALE), no deadline."""
    return settings(max_examples=max(1, int(count * SCALE)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

HOSTILE_TEXTS = [
    "", " ", "..", "../../node.db", "..\\..\\node.db", "a/b", "/etc/passwd", "C:\\x",
    "\x00", "a\x00b", "a\nb", "a\rb", "\t", "\x1b[31m", "\x7f",
    "\u202eevil", "\u200b", "\ufeff", "\u2028",
    "\u0430gr-1", "\uff41\uff47\uff52", "agr-\u0661",  # Cyrillic a, fullwidth, Arabic-Indic 1
    "e\u0301", "\U0001f600", "\ud800", "\udfff",  # combining mark, emoji, lone surrogates
    "x" * 10_000, "%s%n", "'; DROP TABLE agreements; --", "null", "true", "1e999", "-0",
]
HOSTILE_INTS = [-(2**63) - 1, -(2**63), -1, 0, 1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1,
                2**63, 2**64 - 1, 2**64, 10**30]

hostile_text = st.one_of(st.sampled_from(HOSTILE_TEXTS), st.text(max_size=30))
hostile_int = st.one_of(st.sampled_from(HOSTILE_INTS), st.integers())
json_scalars = st.one_of(st.none(), st.booleans(), hostile_int, hostile_text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(hostile_text, inner, max_size=4)),
    max_leaves=8)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside ``value``: dictionary keys and list indices, outermost first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*prefix, index)))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], tuple(rest), new)}
    copy = list(value)
    copy[head] = _replace(value[head], tuple(rest), new)
    return copy


def _remove(value: Any, path: tuple[Any, ...]) -> Any:
    head, *rest = path
    if rest:
        if isinstance(value, dict):
            return {**value, head: _remove(value[head], tuple(rest))}
        copy = list(value)
        copy[head] = _remove(value[head], tuple(rest))
        return copy
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k != head}
    return [v for i, v in enumerate(value) if i != head]


@st.composite
def mutations(draw: st.DrawFn, document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with one place replaced by a hostile value, removed, or a key added."""
    places = _paths(document)[1:]
    action = draw(st.sampled_from(["replace", "replace", "replace", "remove", "add"]))
    if action == "add" or not places:
        return {**document, draw(hostile_text): draw(json_values)}
    path = draw(st.sampled_from(places))
    if action == "remove":
        return dict(_remove(document, path))
    return dict(_replace(document, path, draw(json_values)))


def payload_of(body: Any) -> bytes:
    """Canonical JSON of ``body``, or (lone surrogates) the closest JSON a peer could send."""
    try:
        return canonical_json(body)
    except MalformedMessage:
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")


# Bytes that are nearly a document: JSON with a flaw, or no JSON at all.
near_json = st.one_of(
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),  # not canonical: spaces
    json_values.map(payload_of),
    st.sampled_from([b"{", b"{}", b"[]", b'{"a":1,"a":2}', b'{"a":1.5}', b'{"a":NaN}',
                     b'{"a":1e999}', b'{"a":' + b"1" * 5000 + b"}", b"[" * 50_000,
                     b'{"a":"\\ud800"}', b'{"a":"\xff"}', b"\xef\xbb\xbf{}", b'{"b":1, "a":2}']),
)


def outcome(call: Callable[..., T], *args: Any, **kwargs: Any) -> T | TrustspaceError:
    """What ``call`` gives: its result, or the product error it refused with.

    Any other exception fails the test: a hostile input must be refused on purpose, with
    one of our errors and one clear line, never a crash.
    """
    try:
        return call(*args, **kwargs)
    except TrustspaceError as e:
        assert e.message.strip(), f"{type(e).__name__} without a message"
        assert "\n" not in e.message, f"a message of several lines: {e.message!r}"
        return e
