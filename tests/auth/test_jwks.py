"""The refresh policy of a remote key set, with plain numbers (sans-I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.auth.jwks import RefreshSchedule, cache_lifetime
from wardgate.config.auth import RefreshConfig


@pytest.mark.parametrize("value,expected", [
    (None, None), ("", None), ("public", None),
    ("max-age=300", 300.0), ("public, max-age=300", 300.0), ("MAX-AGE=30", 30.0),
    ('max-age="60"', 60.0), ("max-age=300, s-maxage=100", 100.0),
    ("no-store", 0.0), ("no-cache, max-age=300", 0.0), ("private, no-cache", 0.0),
    ("max-age=abc", None), ("x-max-age=5", None), ("max-age=99999999999", None),
])
def test_cache_control_parsing(value: str | None, expected: float | None) -> None:
    assert cache_lifetime(value) == expected


def test_interval_is_bounded() -> None:
    s = RefreshSchedule(RefreshConfig(min_interval_s=60, max_interval_s=600))
    assert s.interval(None) == 600
    assert s.interval("max-age=5") == 60
    assert s.interval("no-store") == 60
    assert s.interval("max-age=300") == 300
    assert s.interval("max-age=86400") == 600


def test_failure_backoff_doubles_up_to_max() -> None:
    s = RefreshSchedule(RefreshConfig(retry_s=5, max_interval_s=60))
    delays = [s.on_failure(1000.0) for _ in range(6)]
    assert delays == [5, 10, 20, 40, 60, 60]
    s.on_success(2000.0, None, '"e"')
    assert s.failures == 0 and s.etag == '"e"' and s.next_at == 2060
    assert s.on_failure(2000.0) == 5


def test_stale_bound_counts_from_last_success() -> None:
    s = RefreshSchedule(RefreshConfig(max_stale_s=100))
    assert s.stale(0.0)
    s.on_success(1000.0, None, None)
    assert not s.stale(1100.0) and s.stale(1100.5)
    s.on_not_modified(1090.0, None)
    assert not s.stale(1150.0)


def test_unknown_kid_cooldown() -> None:
    s = RefreshSchedule(RefreshConfig(unknown_kid_cooldown_s=30))
    assert s.kid_fetch_allowed(0.0)
    s.note_kid_fetch(100.0)
    assert not s.kid_fetch_allowed(129.9) and s.kid_fetch_allowed(130.0)


@given(st.integers(0, 10**6), st.floats(1, 1000), st.floats(1, 10_000))
def test_interval_always_within_bounds(age: int, lo: float, span: float) -> None:
    s = RefreshSchedule(RefreshConfig(min_interval_s=lo, max_interval_s=lo + span))
    assert lo <= s.interval(f"max-age={age}") <= lo + span
