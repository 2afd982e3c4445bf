"""Field transforms applied on the provider before a row leaves the node.

``plain`` passes a value through, ``mask`` keeps only its first and last character, and
``hash`` replaces it by a keyed pseudonym: stable within one agreement's key (so a consumer
can still join and count on it), unlinkable across agreements (so two consumers cannot join
their data on it), and not reversible by trying every phone number without the key.

Values are first turned into one canonical text form (:func:`text_form`), so a CSV ``"42"``
and a JSON Lines ``42`` mask and hash alike. A missing value (``None``) stays missing: it is
not transformed.

The pseudonym is keyed BLAKE2b (16-byte digest, personalised ``ts.pseudonym.v1``) rather than
HMAC-SHA256: BLAKE2b's keyed mode is a PRF by design, needs one pass instead of two, and is
about three times faster in CPython (0.5 µs against 1.9 µs per value, measured), which matters
on the million-row delivery path. 128 bits leave no practical collision risk for pseudonyms.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, overload

from node.errors import BadInput
from policies.terms import TRANSFORMS

Cell = str | int | float | bool | list[Any] | dict[str, Any]
#: A batch of rows: tuples from a query going in; lists (or, all plain, the same tuples) out.
Rows = list[Any]
Projector = Callable[[Rows], Rows]

PERSON = b"ts.pseudonym.v1"
DIGEST_SIZE = 16
MIN_KEY, MAX_KEY = 16, 64


def text_form(value: object) -> str | None:
    """The canonical text of a cell: text as is, ``true``/``false``, ints in decimal,
    floats by ``repr``, lists and objects as compact JSON with sorted keys, ``None`` as None.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    raise BadInput(f"cannot transform a value of type {type(value).__name__}; expected text, "
                   "a number, a boolean, a list or an object")


@overload
def mask(value: None) -> None: ...
@overload
def mask(value: Cell) -> str: ...
def mask(value: object) -> str | None:
    """First and last character kept, one ``*`` per character between; 1-2 characters all ``*``.

    ``"Zhang Wei"`` -> ``"Z*******i"``, ``"Li"`` -> ``"**"``, ``12345`` -> ``"1***5"``.
    """
    return _mask_cell(value)


def _mask_cell(value: object) -> str | None:
    text = value if type(value) is str else text_form(value)
    if text is None:
        return None
    size = len(text)
    if size <= 2:
        return "*" * size
    return text[0] + "*" * (size - 2) + text[-1]


def _hasher(key: bytes) -> Any:
    if not isinstance(key, bytes) or not MIN_KEY <= len(key) <= MAX_KEY:
        found = f"{len(key)} bytes" if isinstance(key, bytes) else type(key).__name__
        raise BadInput(f"a hash key must be {MIN_KEY} to {MAX_KEY} bytes; found {found}")
    return hashlib.blake2b(key=key, digest_size=DIGEST_SIZE, person=PERSON)


@overload
def pseudonym(key: bytes, value: None) -> None: ...
@overload
def pseudonym(key: bytes, value: Cell) -> str: ...
def pseudonym(key: bytes, value: object) -> str | None:
    """The keyed pseudonym of ``value`` under ``key`` (16-64 bytes), as 32 hex digits."""
    return _pseudonymizer(_hasher(key))(value)


def _pseudonymizer(base: Any) -> Callable[[object], str | None]:
    """A hash function sharing one keyed state: copying it skips re-keying for each value."""
    copy = base.copy

    def hash_cell(value: object) -> str | None:
        text = value if type(value) is str else text_form(value)
        if text is None:
            return None
        state = copy()
        state.update(text.encode("utf-8", "surrogatepass"))
        result: str = state.hexdigest()
        return result

    return hash_cell


def make_projector(transforms: Sequence[str], hash_key: bytes) -> Projector:
    """A function applying ``transforms`` (one per column, agreed-field order) to rows.

    When every transform is ``plain`` the rows are returned as given, the very same list:
    the delivery hot path pays nothing. Otherwise each row becomes a new list with only the
    transformed columns rewritten. Rows must hold one value per transform (they come from a
    query of the agreed fields). ``hash_key`` is checked only when a column is hashed.
    """
    for index, transform in enumerate(transforms):
        if transform not in TRANSFORMS:
            raise BadInput(f"transform {index} must be one of {', '.join(TRANSFORMS)}; "
                           f"found {transform!r}")
    if all(transform == "plain" for transform in transforms):
        return _unchanged
    functions: dict[str, Callable[[object], str | None]] = {"mask": _mask_cell}
    if "hash" in transforms:
        functions["hash"] = _pseudonymizer(_hasher(hash_key))
    columns = tuple((index, functions[transform])
                    for index, transform in enumerate(transforms) if transform != "plain")

    def project(rows: Rows) -> Rows:
        out: list[list[Any]] = []
        append = out.append
        for row in rows:
            cells = list(row)
            for index, function in columns:
                cells[index] = function(cells[index])
            append(cells)
        return out

    return project


def _unchanged(rows: Rows) -> Rows:
    return rows
