"""Login throttling: growing delays per username and per address, 429 + Retry-After."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from wardgate.issuer.throttle import Throttle


def _t(**kw: float) -> Throttle:
    args = {"free": 2, "base_delay": 1.0, "max_delay": 8.0, "forget_after": 100.0} | kw
    return Throttle(**args)  # type: ignore[arg-type]


def test_delay_doubles_after_free_failures_and_is_capped() -> None:
    t = _t()
    waits = []
    now = 0.0
    for _ in range(7):
        now += t.retry_after("k", now)  # a patient attacker waits exactly as long as told
        t.failure("k", now)
        waits.append(t.retry_after("k", now))
    assert waits == [0, 0, 1, 2, 4, 8, 8]


def test_success_resets_and_old_failures_are_forgotten() -> None:
    t = _t(free=0)
    t.failure("k", 0)
    assert t.retry_after("k", 0) == 1
    t.success("k")
    assert t.retry_after("k", 0) == 0
    t.failure("k", 0)
    assert t.retry_after("k", 100) == 0  # no lockout held forever


def test_memory_is_bounded() -> None:
    t = Throttle(free=0, base_delay=1, max_delay=2, forget_after=1000, max_entries=100)
    for i in range(1000):
        t.failure(f"k{i}", float(i))
    assert len(t._entries) <= 100


@given(st.lists(st.floats(min_value=0, max_value=50), max_size=40),
       st.integers(min_value=0, max_value=5))
def test_wait_never_exceeds_max_and_never_negative(gaps: list[float], free: int) -> None:
    t = _t(free=free)
    now = 0.0
    for g in gaps:
        now += g
        w = t.retry_after("k", now)
        assert 0 <= w <= 8.0 + 1e-9  # float arithmetic on absolute times
        t.failure("k", now)


def test_http_throttle_per_username(issuer) -> None:  # type: ignore[no-untyped-def]
    issuer.add_user("throttled", "right-password", [])
    with issuer.client() as http:
        codes = [issuer.login(http, "throttled", "nope").status_code for _ in range(3)]
        assert codes == [403, 403, 403]  # the free failures
        issuer.login(http, "throttled", "nope")  # 4th failure: next attempt must wait
        r = issuer.login(http, "throttled", "right-password")
        assert r.status_code == 429 and r.json()["error"] == "slow_down"
        assert int(r.headers["retry-after"]) >= 1
        # Another user from the same address is not affected.
        assert issuer.login(http, "alice", "correct horse").status_code == 200
        time.sleep(0.35)  # base_delay_s is 0.3 in tests
        assert issuer.login(http, "throttled", "right-password").status_code == 200


def test_http_throttle_per_address(make_issuer) -> None:  # type: ignore[no-untyped-def]
    iss = make_issuer(start=False, throttle={"free_failures_per_address": 2,
                                             "free_failures_per_user": 100,
                                             "base_delay_s": 5.0, "max_delay_s": 10.0})
    iss.add_user("carol", "pw", [])
    iss.start()
    with iss.client() as http:
        for i in range(3):  # spraying different usernames from one address
            assert iss.login(http, f"user{i}", "x").status_code == 403
        r = iss.login(http, "carol", "pw")
        assert r.status_code == 429 and 4 <= int(r.headers["retry-after"]) <= 5
