"""The sans-I/O resilience pieces of the upstream layer: outlier detection (health.py), the
circuit breaker and retry budget (breaker.py), the hash ring (balancer.py) and the cluster's
choice among targets under each state, all on an injected clock."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.config.gateway import UpstreamConfig
from wardgate.gateway.upstream.balancer import HashRing, stable_hash
from wardgate.gateway.upstream.breaker import Breaker
from wardgate.gateway.upstream.cluster import Cluster
from wardgate.gateway.upstream.health import (
    EJECTED,
    HALF_OPEN,
    HEALTHY,
    ErrorRateWindow,
    PassiveHealth,
)


def _cluster(n: int = 2, **over: Any) -> Cluster:
    cfg = UpstreamConfig.model_validate(
        {"name": "up", "targets": [f"http://127.0.0.1:{9000 + i}" for i in range(n)], **over})
    return Cluster(cfg)


# -- outlier detection ------------------------------------------------------------------------
def test_consecutive_failures_eject_with_doubling_back_off() -> None:
    h = PassiveHealth(3, 10.0, 35.0)
    assert not h.failure(0.0) and not h.failure(0.0)
    assert h.failure(0.0) and h.state == EJECTED and h.ejected_until == 10.0
    assert not h.available(5.0, 0)
    assert h.available(10.0, 0) and h.state == HALF_OPEN
    assert not h.available(10.0, 1)  # one trial request at a time
    assert h.failure(10.0)  # the trial failed: ejected again at once, for twice as long
    assert h.ejected_until == 30.0
    h.available(30.0, 0)
    h.failure(30.0)
    assert h.ejected_until == 30.0 + 35.0  # capped
    h.available(65.0, 0)
    assert h.success(65.0) and h.state == HEALTHY and h.failures == 0


def test_a_success_in_between_resets_the_consecutive_count() -> None:
    h = PassiveHealth(3, 10.0, 300.0)
    for _ in range(10):
        h.failure(0.0)
        h.failure(0.0)
        h.success(0.0)
    assert h.state == HEALTHY


def test_back_off_starts_over_after_a_long_healthy_stretch() -> None:
    h = PassiveHealth(1, 10.0, 40.0)
    h.failure(0.0)
    h.available(10.0, 0)
    h.success(10.0)
    h.failure(11.0)
    assert h.ejected_until == 31.0  # doubled: it failed again soon
    h.available(31.0, 0)
    h.success(31.0)
    h.failure(200.0)
    assert h.ejected_until == 210.0  # base again


def test_error_rate_window_ejects_on_rate_not_on_streaks() -> None:
    rate = ErrorRateWindow(10.0, threshold=0.5, min_requests=10)
    h = PassiveHealth(1000, 10.0, 300.0, rate=rate)
    t = 0.0
    # 40% failures, never in a row: no ejection
    for i in range(50):
        t += 0.05
        if i % 5 in (0, 2):
            assert not h.failure(t)
        else:
            h.success(t)
            h.record_success(t)
    assert h.state == HEALTHY
    # now 60%: ejected
    ejected = False
    for i in range(50):
        t += 0.05
        if i % 5 in (0, 1, 3):
            ejected = h.failure(t) or ejected
        else:
            h.success(t)
            h.record_success(t)
        if ejected:
            break
    assert ejected and h.state == EJECTED


def test_error_rate_needs_min_requests_and_forgets_old_slices() -> None:
    w = ErrorRateWindow(10.0, threshold=0.5, min_requests=5)
    assert not any(w.record(0.0, True) for _ in range(4))  # 4 of 4 failed, but too few
    assert w.rate(0.0) == (4, 4)
    assert w.rate(25.0) == (0, 0)  # all of that slid out of the window
    for _ in range(5):
        w.record(26.0, False)
    assert w.rate(26.0) == (5, 0)


@given(st.lists(st.tuples(st.floats(0, 1000), st.booleans()), max_size=200))
@settings(max_examples=150, deadline=None)
def test_error_rate_window_counts_only_the_window(events: list[tuple[float, bool]]) -> None:
    w = ErrorRateWindow(10.0, 0.5, 1)
    events.sort()
    for now, failed in events:
        w.record(now, failed)
    if events:
        last = events[-1][0]
        total, errors = w.rate(last)
        # Buckets are 1 s wide: the window holds what happened in the last 9-10 s.
        recent = [f for t, f in events if t > last - 9.0]
        within = [f for t, f in events if t > last - 11.0]
        assert len(recent) <= total <= len(within)
        assert 0 <= errors <= total


def test_slow_start_ramps_a_returning_target() -> None:
    h = PassiveHealth(1, 10.0, 300.0, slow_start_s=20.0)
    h.failure(0.0)
    h.available(10.0, 0)
    h.success(10.0)
    assert h.share(10.0) == 0.1 and h.share(20.0) == 0.5 and h.share(30.0) == 1.0
    assert not h.calm(20.0) and h.calm(30.0)


def test_slow_start_share_seen_through_the_cluster() -> None:
    rolls = iter([0.0, 0.99] * 500)  # every other roll admits a target at share 0.5
    cl = _cluster(2, health={"max_failures": 1, "ejection_s": 1, "slow_start_s": 10})
    cl._rng = lambda: next(rolls)
    a, b = cl.targets
    a.health.failure(0.0)
    cl.refresh(0.0)
    assert cl.watch == 1
    assert all(cl.pick(0.5) is b for _ in range(10))
    # The ejection is over: a is half-open and gets exactly one trial request.
    assert cl.pick(1.0) is a
    a.active = 1
    assert cl.pick(1.0) is b
    a.active = 0
    a.health.success(1.0)
    counts = Counter(cl.pick(6.0) for _ in range(400))  # share 0.5: a gets about 1/3
    assert 80 < counts[a] < 190, counts
    cl.refresh(11.0)
    assert cl.watch == 0  # past the ramp: the fast path again


def test_all_ejected_gives_none_and_retry_after_of_the_first_return() -> None:
    cl = _cluster(2, health={"max_failures": 1, "ejection_s": 4})
    for t in cl.targets:
        t.health.failure(0.0)
    cl.refresh(0.0)
    assert cl.pick(1.0) is None
    assert cl.retry_after(1.0) == 3
    snap = cl.snapshot(1.0)
    assert [t["state"] for t in snap["targets"]] == ["ejected", "ejected"]
    assert snap["breaker"]["active"] == 0


# -- circuit breaker and retry budget ---------------------------------------------------------
def test_retry_budget_is_a_share_of_active_with_a_floor() -> None:
    br = Breaker(100, 100, retry_percent=20.0, retry_min=3)
    br.active = 5
    assert [br.retry_allowed() for _ in range(4)] == [True, True, True, False]
    br.active = 50  # 20% of 50 = 10 retries in flight
    assert sum(br.retry_allowed() for _ in range(20)) == 7
    assert br.retrying == 10 and br.retries_denied == 14


# -- consistent hashing -----------------------------------------------------------------------
def test_hash_ring_moves_only_the_keys_of_a_leaving_target() -> None:
    cl = _cluster(5, balancer="hash", hash_key="header:x-user")
    ring = cl.ring
    assert isinstance(ring, HashRing)
    keys = [stable_hash(b"user-%d" % i) for i in range(5000)]
    before = [ring.lookup(k, lambda t: True) for k in keys]
    gone = cl.targets[2]
    after = [ring.lookup(k, lambda t: t is not gone) for k in keys]
    moved = sum(1 for x, y in zip(before, after, strict=True) if x is not y)
    on_gone = sum(1 for x in before if x is gone)
    assert moved == on_gone  # only its own keys moved ...
    assert 0.1 * len(keys) < on_gone < 0.3 * len(keys)  # ... about 1/5 of them
    spread = Counter(before)
    assert min(spread.values()) > 0.1 * len(keys)


def test_hash_key_follows_the_request_and_skips_ejected_targets() -> None:
    cl = _cluster(3, balancer="hash", hash_key="header:x-user",
                  health={"max_failures": 1})

    class Req:
        identity = None
        client_ip = "127.0.0.1"

        def __init__(self, user: bytes) -> None:
            self.user = user

        def header(self, name: bytes) -> bytes | None:
            return self.user if name == b"x-user" else None

    first = {u: cl.pick(0.0, None, Req(u)) for u in (b"alice", b"bob", b"carol", b"dave")}
    assert all(cl.pick(0.0, None, Req(u)) is t for u, t in first.items())  # sticky
    victim = first[b"alice"]
    victim.health.failure(0.0)
    cl.refresh(0.0)
    assert cl.pick(0.0, None, Req(b"alice")) is not victim
    for u, t in first.items():
        if t is not victim:
            assert cl.pick(0.0, None, Req(u)) is t  # the others did not move


def test_hash_without_the_key_spreads_by_client_address() -> None:
    cl = _cluster(4, balancer="hash", hash_key="header:x-user")

    class Anon:
        identity = None

        def __init__(self, ip: str) -> None:
            self.client_ip = ip

        def header(self, name: bytes) -> None:
            return None

    picks = {ip: cl.pick(0.0, None, Anon(ip)) for ip in (f"10.0.0.{i}" for i in range(64))}
    assert all(cl.pick(0.0, None, Anon(ip)) is t for ip, t in picks.items())  # sticky
    assert len(set(picks.values())) >= 3  # not every keyless caller on one target


@pytest.mark.parametrize("over", [
    {"balancer": "hash"},
    {"hash_key": "client_ip"},
    {"balancer": "hash", "hash_key": "cookie:x"},
    {"health": {"failure_statuses": [404]}},
    {"circuit_breaker": {"max_requests": 0}},
])
def test_bad_resilience_config_is_refused(over: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        UpstreamConfig.model_validate({"name": "up", "targets": ["http://127.0.0.1:1"], **over})
