"""The revoke action's core (detect/revoker.py): what a verdict revokes, idempotency and the
rate bound, with the clock passed in; and its config checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.detect.test_config import load, write
from wardgate.config.detect import RevokeAction
from wardgate.config.loader import ConfigError
from wardgate.detect.events import Event
from wardgate.detect.revoker import Revoker
from wardgate.detect.verdict import KEY_JTI, KEY_NET, KEY_SUB, Finding

NOW = 1_800_000_000.0


def ev(jti: str | None = "j1", sub: str | None = "alice", exp: float = NOW + 600) -> Event:
    return Event(0.0, "api", "127.0.0.1", "127.0.0.0/24", sub=sub, jti=jti, exp=exp)


def finding(key_type: str = KEY_JTI, key: str = "j1") -> Finding:
    return Finding("token_replay", 1.5, key_type, key, {}, "test")


def test_a_token_verdict_revokes_the_jti_until_its_exp() -> None:
    r = Revoker(RevokeAction(), 100)
    rev = r.decide(finding(), ev(), NOW)
    assert rev is not None and (rev.kind, rev.value) == ("jti", "j1")
    assert NOW + 600 <= rev.until <= NOW + 602


def test_a_subject_verdict_revokes_the_token_in_use_or_the_subject() -> None:
    rev = Revoker(RevokeAction(), 100).decide(finding(KEY_SUB, "alice"), ev(), NOW)
    assert rev is not None and rev.kind == "jti"
    rev = Revoker(RevokeAction(subject=True), 100).decide(finding(KEY_SUB, "alice"), ev(), NOW)
    assert rev is not None and (rev.kind, rev.value) == ("sub", "alice")
    assert rev.before == NOW + 1 and rev.until == NOW + 1 + 86_400


def test_a_network_verdict_has_nothing_to_revoke() -> None:
    r = Revoker(RevokeAction(), 100)
    assert r.decide(finding(KEY_NET, "10.0.0.0/24"), ev(None, None), NOW) is None
    assert r.nothing == 1


def test_a_token_without_exp_is_held_a_day() -> None:
    rev = Revoker(RevokeAction(), 100).decide(finding(), ev(exp=float("inf")), NOW)
    assert rev is not None and rev.until == NOW + 86_401


def test_idempotent() -> None:
    r = Revoker(RevokeAction(), 100)
    assert r.decide(finding(), ev(), NOW) is not None
    assert r.decide(finding(), ev(), NOW + 500) is None
    assert r.decide(finding(), ev(jti="j2"), NOW, held=lambda rev: rev.value == "j2") is None
    assert r.repeated == 2 and r.revoked == 1
    s = Revoker(RevokeAction(subject=True), 100)
    assert s.decide(finding(KEY_SUB, "alice"), ev(), NOW) is not None
    assert s.decide(finding(KEY_SUB, "alice"), ev(), NOW + 30) is None
    assert s.decide(finding(KEY_SUB, "alice"), ev(), NOW + 61) is not None  # newer tokens


def test_a_storm_of_verdicts_is_rate_bounded() -> None:
    r = Revoker(RevokeAction(max_per_minute=60, burst=5), 100_000)
    sent = sum(r.decide(finding(), ev(jti=f"j{i}"), NOW + i * 0.001) is not None
               for i in range(10_000))
    assert 14 <= sent <= 15  # the burst of 5, then one a second over the 10 s
    assert r.limited == 10_000 - sent
    later = r.decide(finding(), ev(jti="late"), NOW + 100)
    assert later is not None  # the bucket refills


def test_config_revoke_needs_the_feed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, {"action": "revoke"})
    assert "needs a revocation: section" in str(exc.value.issues)
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, {"action": "log"}, route={"detection": {"action": "revoke"}})
    assert "needs a revocation: section" in str(exc.value.issues)


def test_config_revoke_without_redis_needs_the_report_token(tmp_path: Path) -> None:
    import yaml

    from wardgate.config import load_gateway

    path = write(tmp_path, {"action": "revoke"})
    cfg = yaml.safe_load(path.read_text())
    cfg["revocation"] = {"poll_url": "http://127.0.0.1:9/revocations", "token_env": "FEED_TOK"}
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as exc:
        load_gateway(str(path))
    assert "needs token_env or token_file" in str(exc.value.issues)
    cfg["detection"]["revoke"] = {"token_env": "REPORT_TOK"}
    path.write_text(yaml.safe_dump(cfg))
    assert load_gateway(str(path)).detection.revoke.token_env == "REPORT_TOK"  # type: ignore[union-attr]
    cfg["state"] = {"redis_url": "redis://127.0.0.1:6379/0"}  # the stream: no token needed
    del cfg["detection"]["revoke"]
    path.write_text(yaml.safe_dump(cfg))
    assert load_gateway(str(path)).revocation_source() == "redis"
