"""GCRA arithmetic (wardgate.limits.gcra): burst, refill, retry-after, clocks, memory bound."""

from __future__ import annotations

import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.limits.gcra import Gcra, LocalBuckets


def test_a_rested_key_passes_burst_plus_one_then_one_per_interval() -> None:
    b = LocalBuckets(Gcra(10, 1.0, burst=3), max_keys=100)
    now = 1000.0
    got = [b.take("k", now)[0] for _ in range(6)]
    assert got == [True, True, True, True, False, False]
    # one interval (0.1 s) later exactly one more passes
    assert b.take("k", now + 0.1)[0]
    assert not b.take("k", now + 0.1)[0]


def test_remaining_counts_down_and_reset_is_time_until_rested() -> None:
    b = LocalBuckets(Gcra(100, 1.0, burst=20), max_keys=100)
    d = [b.take("k", 50.0) for _ in range(3)]
    assert [x[1] for x in d] == [20, 19, 18]
    assert d[2][3] == pytest.approx(0.03)


def test_retry_after_is_when_the_refused_request_would_pass() -> None:
    g = Gcra(2, 60.0, burst=0)  # 2/m: one every 30 s
    b = LocalBuckets(g, max_keys=10)
    assert b.take("k", 0.0)[0]
    refused = b.take("k", 10.0)
    assert not refused[0]
    assert refused[2] == pytest.approx(20.0)
    assert not b.take("k", 29.9)[0]
    assert b.take("k", 30.0)[0]


def test_a_refusal_does_not_consume_quota() -> None:
    b = LocalBuckets(Gcra(1, 1.0, burst=0), max_keys=10)
    assert b.take("k", 0.0)[0]
    for i in range(100):
        assert not b.take("k", 0.5 + i * 0.001)[0]
    assert b.take("k", 1.0)[0]  # the refusals did not push the key further out


def test_a_clock_that_goes_backwards_grants_nothing_extra() -> None:
    b = LocalBuckets(Gcra(1, 1.0, burst=0), max_keys=10)
    assert b.take("k", 100.0)[0]
    assert not b.take("k", 50.0)[0]  # earlier "now": the stored TAT still rules
    assert not b.take("k", 100.5)[0]


def test_keys_are_independent() -> None:
    b = LocalBuckets(Gcra(1, 1.0, burst=0), max_keys=10)
    assert b.take("a", 0.0)[0]
    assert b.take("b", 0.0)[0]
    assert not b.take("a", 0.0)[0]


@settings(max_examples=200, deadline=None)
@given(count=st.integers(1, 50), burst=st.integers(0, 20),
       gaps=st.lists(st.floats(0, 0.5, allow_nan=False), min_size=1, max_size=300))
def test_never_more_than_burst_plus_rate_in_any_span(count: int, burst: int,
                                                     gaps: list[float]) -> None:
    period = 1.0
    b = LocalBuckets(Gcra(count, period, burst), max_keys=10)
    now, times = 0.0, []
    for g in gaps:
        now += g
        if b.take("k", now)[0]:
            times.append(now)
    interval = period / count
    # GCRA's bound: in any closed span of length L, at most burst + 1 + floor(L / T) pass
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            span = times[j] - start
            assert j - i + 1 <= burst + 1 + math.floor(span / interval + 1e-6)


def test_a_flood_of_distinct_keys_stays_within_the_cap() -> None:
    cap = 65_536
    b = LocalBuckets(Gcra(10, 1.0, burst=5), max_keys=cap)
    peak_len = 0
    for i in range(1_000_000):  # every key live (same instant): nothing rests, eviction must act
        b.take(f"ip:10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}-{i}", 0.0)
        if i % 4096 == 0:
            peak_len = max(peak_len, len(b.tats))
    assert len(b.tats) <= cap and peak_len <= cap
    used = sys.getsizeof(b.tats) + sum(sys.getsizeof(k) + 24 for k in b.tats)
    assert used < 16 * 1024 * 1024  # documented: ~150-250 bytes a key, so ~15 MB at the cap


def test_rested_keys_are_swept() -> None:
    b = LocalBuckets(Gcra(10, 1.0, burst=0), max_keys=1000)
    for i in range(500):
        b.take(str(i), 0.0)
    b.sweep(0.05)  # interval 0.1: not rested yet
    assert len(b.tats) == 500
    b.sweep(0.2)
    assert not b.tats


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        Gcra(0, 1.0, 0)
    with pytest.raises(ValueError):
        Gcra(1, 0.0, 0)


@settings(max_examples=150, deadline=None)
@given(count=st.integers(1, 50), burst=st.integers(0, 10),
       gaps=st.lists(st.floats(0, 0.3, allow_nan=False), min_size=1, max_size=120))
def test_the_fused_single_limit_step_decides_as_local_buckets(count: int, burst: int,
                                                              gaps: list[float]) -> None:
    from wardgate.config.limits import RateLimitConfig
    from wardgate.errors import RateLimited
    from wardgate.gateway.headers import TrustedProxies
    from wardgate.gateway.request import Request
    from wardgate.limits.route import RouteLimiter

    cfg = RateLimitConfig(name="x", key="ip", rate=f"{count}/s", burst=burst)
    limiter = RouteLimiter([cfg], "r", TrustedProxies([]), None)
    assert limiter.apply.__name__ == "apply"  # the specialised step, not RouteLimiter._apply
    reference = LocalBuckets(Gcra(count, 1.0, burst), max_keys=10)
    now = 100.0
    for g in gaps:
        now += g
        req = Request()
        req.client_ip = "192.0.2.1"
        want = reference.take("ip:192.0.2.1", now)
        try:
            limiter.apply(req, now)
            got = True
        except RateLimited as exc:
            got = False
            assert exc.retry_after_s == max(1, math.ceil(want[2]))
        assert got == want[0]
        if got:
            assert f'"x";r={want[1]};t={math.ceil(want[3])}'.encode() in req.resp_fields


@pytest.mark.parametrize("now", [100.3, 12345.678, 1.7e9 + 0.123, 0.1])
def test_a_rested_key_always_resets_after_one_interval(now: float) -> None:
    # (now + 1.0) - now rounds above 1.0 for many `now`: t must still say 1 second, not 2
    from wardgate.config.limits import RateLimitConfig
    from wardgate.gateway.headers import TrustedProxies
    from wardgate.gateway.request import Request
    from wardgate.limits.route import RouteLimiter

    d = Gcra(1, 1.0, 2).decide(0.0, now)
    assert d == (True, 2, 0.0, 1.0, now + 1.0)
    limiter = RouteLimiter([RateLimitConfig(name="x", key="ip", rate="1/s", burst=2)], "r",
                           TrustedProxies([]), None)
    req = Request()
    req.client_ip = "192.0.2.7"
    limiter.apply(req, now)
    assert b'RateLimit: "x";r=2;t=1' in req.resp_fields
    req2 = Request()
    req2.client_ip = "192.0.2.7"
    limiter.apply(req2, now + 0.25)  # not at rest: one used of the burst, computed in full
    assert b'"x";r=1;t=' in req2.resp_fields
