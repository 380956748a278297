"""The issuer's detection adapter (wardgate.issuer.detection) in process, on a controlled
clock: fingerprints, password tags, the refusal each action gives, the recent verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from wardgate.config.issuer import IssuerConfig
from wardgate.issuer.detection import IssuerDetection
from wardgate.issuer.errors import LoginRefused, SlowDown


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make(**detection: Any) -> tuple[IssuerDetection, Clock]:
    clock = Clock()
    d = IssuerDetection(IssuerConfig.model_validate({"detection": detection}), clock)
    d._fp_key = b"k" * 32  # what start() takes from the database
    return d, clock


def stuff(d: IssuerDetection, net: str = "10.1.2", n: int = 10) -> None:
    for i in range(n):
        d.attempt(f"{net}.{i + 1}", f"user{i}", f"pw{i}", False, "/login")


def test_fingerprints_are_keyed_stable_and_casefolded() -> None:
    d, _ = make()
    fp = d.user_fp("Alice@Example.com")
    assert len(fp) == 12 and fp == d.user_fp("alice@example.com")
    assert "alice" not in fp and fp != d.user_fp("bob")
    other, _ = make()
    other._fp_key = b"x" * 32
    assert other.user_fp("alice@example.com") != fp


def test_password_tags_are_keyed_per_process_and_only_for_failures() -> None:
    a, _ = make()
    b, _ = make()
    assert a._tag("Winter2026!") == a._tag("Winter2026!") != b._tag("Winter2026!")
    assert len(a._tag("x")) == 8
    for i in range(10):
        a.attempt("10.1.2.3", f"u{i}", "Winter2026!", False, "/login")
    (rec,) = a.recent
    assert rec["kind"] == "password_spraying" and "Winter2026!" not in repr(rec)


def test_deny_refuses_the_network_until_the_verdict_expires() -> None:
    d, clock = make(action="deny", deny_s=60)
    d.refuse("10.1.2.99")  # nothing flagged yet
    stuff(d)
    with pytest.raises(LoginRefused) as exc:
        d.refuse("10.1.2.99")
    assert exc.value.status == 403 and exc.value.retry_after_s == 60
    assert "credential stuffing" in exc.value.description
    d.refuse("10.1.3.1")  # another network
    clock.t += 61
    d.refuse("10.1.2.99")


def test_slow_down_answers_429_and_log_or_dry_run_refuse_nothing() -> None:
    d, _ = make(action="slow_down", deny_s=30)
    stuff(d)
    with pytest.raises(SlowDown) as exc:
        d.refuse("10.1.2.200")
    assert exc.value.status == 429 and exc.value.retry_after_s == 30
    for kw in ({"action": "log"}, {"action": "deny", "dry_run": True}):
        d, _ = make(**kw)
        stuff(d)
        d.refuse("10.1.2.200")
        assert d.recent and d.recent[0]["action"] == ("log" if kw["action"] == "log" else "deny")


def test_throttled_attempts_count_without_a_password() -> None:
    d, _ = make()
    for n in range(5):
        d.attempt(f"10.{n}.0.1", "victim", None, False, "/login")
    (rec,) = d.recent
    assert rec["kind"] == "password_spraying" and rec["key"] == "user:" + d.user_fp("victim")


def test_refresh_reuse_is_reported_with_a_family_fingerprint() -> None:
    d, _ = make()
    v = d.refresh_reuse("10.9.9.9", "shop", "family-secret-id", 7)
    rec = d.recent[0]
    assert v.action == "revoke" and rec["kind"] == "refresh_reuse"
    assert rec["key"].startswith("family:") and "family-secret-id" not in repr(rec)
    assert rec["features"]["user"] == d.user_fp("7") and rec["network"] == "10.9.9.0/24"
