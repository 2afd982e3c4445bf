"""Identifiers that operators and peers give us: one strict rule for all of them.

Ids end up in file names, SQL values, log lines and signed documents, so they are limited to
ASCII letters, digits and ``. _ -``, start with a letter or digit, and are at most 64 long:
no path separators, no control characters, no look-alike Unicode.
"""

from __future__ import annotations

import re
import secrets

from node.errors import InvalidId

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*")


def check_id(value: object, *, what: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value) or value.endswith("."):
        shown = value if isinstance(value, str) and value.isprintable() and len(value) < 80 \
            else "(unprintable)"
        raise InvalidId(f"{what} {shown!r} is not a valid id: use 1-64 ASCII letters, digits, "
                        "'.', '_' or '-', starting with a letter or digit")
    return value


def check_domain(value: object) -> str:
    if not isinstance(value, str) or len(value) > 253 or not _DOMAIN.fullmatch(value):
        raise InvalidId("a domain must be lower-case dot-separated labels of letters, digits "
                        f"and '-', e.g. finance.qingdao; found {value!r}")
    return value


def new_id(prefix: str) -> str:
    """A fresh random id such as ``agr-3f9c…``; 128 bits, unguessable."""
    return f"{prefix}-{secrets.token_hex(16)}"
