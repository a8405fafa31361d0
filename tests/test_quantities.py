from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.fleetrepo.quantities import CountOrPercent, parse_count_or_percent


@pytest.mark.parametrize(
    ("raw", "total", "expected"),
    [
        (3, 10, 3),
        (30, 10, 10),
        ("25%", 10, 3),
        ("1%", 4, 1),
        ("0%", 10, 0),
        ("100%", 7, 7),
        ("50%", 0, 0),
    ],
)
def test_resolve(raw: object, total: int, expected: int) -> None:
    assert parse_count_or_percent(raw).resolve(total) == expected


@pytest.mark.parametrize("raw", [True, -1, "101%", "1.5", "ten", "%", None, 2.5])
def test_rejects(raw: object) -> None:
    with pytest.raises(ValueError, match=r"count|percent"):
        parse_count_or_percent(raw)


@given(st.integers(0, 100), st.integers(0, 10_000))
def test_percent_resolves_within_the_group_and_never_rounds_a_positive_share_to_zero(
    percent: int, total: int
) -> None:
    resolved = CountOrPercent(percent, is_percent=True).resolve(total)
    assert 0 <= resolved <= total
    if percent > 0 and total > 0:
        assert resolved >= 1
