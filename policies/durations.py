"""Durations in policy terms: ``Ns``, ``Nm``, ``Nh``, ``Nd``, held as whole seconds.

The grammar is deliberately strict — one positive integer without sign, space or leading
zero, then one unit letter — so one duration has one spelling and a typo such as ``7 d``,
``07d`` or ``7D`` is refused instead of being guessed at. Durations are capped at
:data:`MAX_SECONDS` (100 years) so deadline arithmetic can never overflow a timestamp.
"""

from __future__ import annotations

import re
from typing import TypeGuard

from node.errors import InvalidDuration

UNITS: dict[str, int] = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
MAX_SECONDS = 36_500 * 86_400

_DURATION = re.compile(r"([1-9][0-9]{0,9})([smhd])")


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_duration(text: str, *, key: str) -> int:
    """Seconds in ``text``; ``key`` (e.g. ``limits.retention``) names it in the error."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidDuration(
            f"{key} must be a duration such as \"7d\" (a positive whole number without "
            f"leading zeros followed by s, m, h or d); found {_show(text)}")
    seconds = int(match.group(1)) * UNITS[match.group(2)]
    if seconds > MAX_SECONDS:
        raise InvalidDuration(f"{key} must be at most 36500d (100 years); found {text!r}")
    return seconds


def is_seconds(value: object) -> TypeGuard[int]:
    """True for an ``int`` from 1 to :data:`MAX_SECONDS`.

    ``bool`` is refused although Python counts it as an ``int``: ``true`` is no duration.
    """
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SECONDS


def check_seconds(value: object, *, key: str) -> int:
    """``value`` as a duration in whole seconds; ``key`` names it in the error."""
    if not is_seconds(value):
        raise InvalidDuration(
            f"{key} must be a whole number of seconds from 1 to {MAX_SECONDS}; "
            f"found {_show(value)}")
    return value


def format_duration(seconds: int) -> str:
    """The shortest exact spelling of ``seconds``: 86400 -> ``1d``, 5400 -> ``90m``.

    It is the inverse of :func:`parse_duration`, so terms printed back parse to the same value.
    """
    check_seconds(seconds, key="a duration")
    unit = next(unit for unit, size in UNITS.items() if seconds % size == 0)
    return f"{seconds // UNITS[unit]}{unit}"
