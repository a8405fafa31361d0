from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "h", "1.5h", "30", "2 hours", "1m1h", "-1h"])
def test_parse_rejects_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"write e\.g\."):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**8))
def test_format_then_parse_round_trips(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("text", ["3651d", "3650d1s", "99999999999d", "9" * 40 + "s"])
def test_parse_refuses_more_than_ten_years_instead_of_overflowing_later(text: str) -> None:
    """A soak or horizon is added to the time now; 3,000,000 days passed validation and then
    crashed the planner, and 10^11 days overflowed timedelta itself."""
    with pytest.raises(ValueError, match=r"longer than 3650d, the longest duration accepted"):
        parse_duration(text)
    assert parse_duration("3650d") == timedelta(days=3650)
