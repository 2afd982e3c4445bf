"""Durations: one spelling per value, everything else refused with the key named."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.errors import InvalidDuration, InvalidTerms
from policies.durations import MAX_SECONDS, format_duration, parse_duration

PARSES = {
    "one second": ("1s", 1),
    "seconds": ("45s", 45),
    "minutes": ("90m", 5_400),
    "hours": ("24h", 86_400),
    "days": ("7d", 604_800),
    "many seconds stay seconds": ("86400s", 86_400),
    "the longest": ("36500d", MAX_SECONDS),
}


@pytest.mark.parametrize(("text", "seconds"), PARSES.values(), ids=PARSES.keys())
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text, key="limits.period") == seconds


REFUSED: dict[str, object] = {
    "empty": "",
    "zero": "0d",
    "leading zero": "07d",
    "negative": "-1d",
    "plus sign": "+1d",
    "inner space": "7 d",
    "leading space": " 7d",
    "trailing space": "7d ",
    "trailing newline": "7d\n",
    "upper-case unit": "7D",
    "unknown unit weeks": "1w",
    "unit spelled out": "7days",
    "fraction": "1.5h",
    "unit only": "d",
    "number only": "7",
    "two units": "1d12h",
    "non-ASCII digits": "\u0667d",
    "full-width digits": "\uff17d",
    "longer than 100 years": "36501d",
    "absurdly long": "99999999999d",
    "an integer": 7,
    "a boolean": True,
    "nothing": None,
}


@pytest.mark.parametrize("value", REFUSED.values(), ids=REFUSED.keys())
def test_parse_duration_refuses(value: object) -> None:
    with pytest.raises(InvalidDuration, match=r"^limits\.retention must be") as caught:
        parse_duration(value, key="limits.retention")  # type: ignore[arg-type]
    assert isinstance(caught.value, InvalidTerms), "a bad duration is a bad terms file"
    assert caught.value.kind == "bad_input"


FORMATS = {
    "seconds": (45, "45s"),
    "a minute": (60, "1m"),
    "ninety seconds stay seconds": (90, "90s"),
    "ninety minutes": (5_400, "90m"),
    "an hour": (3_600, "1h"),
    "a day": (86_400, "1d"),
    "twenty-five hours": (90_000, "25h"),
    "a week": (604_800, "7d"),
}


@pytest.mark.parametrize(("seconds", "text"), FORMATS.values(), ids=FORMATS.keys())
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


NOT_FORMATTED: dict[str, object] = {
    "zero": 0,
    "negative": -60,
    "a boolean": True,
    "a float": 1.5,
    "text": "1d",
    "beyond the maximum": MAX_SECONDS + 1,
}


@pytest.mark.parametrize("value", NOT_FORMATTED.values(), ids=NOT_FORMATTED.keys())
def test_format_duration_refuses(value: object) -> None:
    with pytest.raises(InvalidDuration):
        format_duration(value)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=MAX_SECONDS))
def test_format_then_parse_is_identity(seconds: int) -> None:
    assert parse_duration(format_duration(seconds), key="k") == seconds
