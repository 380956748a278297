"""The detector's core on hand-made event sequences (sans-I/O, the clock in the events):
each attack is detected and explained, and normal use is never flagged."""

from __future__ import annotations

import random
from typing import Any

import pytest

from wardgate.config.detect import DetectionConfig
from wardgate.detect.detector import Detector
from wardgate.detect.events import Event, network_of
from wardgate.detect.verdict import KEY_JTI, KEY_NET, KEY_SUB

OWNER, THIEF = "10.1.1.7", "192.0.2.9"
BROWSER, CURL = "ua-browser", "ua-curl"


def ev(t: float, client: str = OWNER, ua: str = BROWSER, sub: str | None = "alice",
       jti: str | None = "tok-1", route: str = "api", outcome: str = "ok",
       params: tuple[str, ...] = (), path: str = "/api", client_id: str | None = None) -> Event:
    return Event(t, route, client, network_of(client), 200, "GET", outcome, sub, jti, client_id,
                 "hash-" + (sub or "-"), ua, path, params)


def detector(**over: Any) -> Detector:
    return Detector(DetectionConfig(**over))


def feed(det: Detector, events: list[Event]) -> list[Any]:
    out = []
    for e in events:
        out.extend(det.observe(e))
    return out


def test_network_prefixes() -> None:
    assert network_of("10.1.1.7") == "10.1.1.0/24"
    assert network_of("2001:db8:1:2::5") == "2001:db8:1::/48"
    assert network_of("::ffff:10.1.1.7") == "10.1.1.0/24"


# -- attacks ---------------------------------------------------------------------------------
def test_stolen_token_from_another_client_is_detected_on_its_first_request() -> None:
    det = detector()
    assert feed(det, [ev(t) for t in range(10)]) == []
    (v,) = det.observe(ev(10.5, client=THIEF, ua=CURL))
    f = v.finding
    assert (f.kind, f.key_type, f.key) == ("token_replay", KEY_JTI, "tok-1")
    assert f.score >= 1.0
    assert f.features["networks"] == 2 and f.features["ua_switches"] == 1
    assert f.features["networks_seen"] == ["10.1.1.0/24", "192.0.2.0/24"]
    text = f.explain()
    assert text.startswith("token_replay (score 1.00)") and "192.0.2.0/24" in text
    assert v.record(1.0)["jti"] == "tok-1" and v.record(1.0)["client"] == THIEF
    assert det.flags.jti["tok-1"].until == pytest.approx(10.5 + 300)


def test_replay_with_a_copied_user_agent_is_detected_when_owner_and_thief_alternate() -> None:
    det = detector()
    seq = [ev(0), ev(1, client=THIEF), ev(2)]
    assert feed(det, seq) == []  # two network switches: score 2 of 3
    (v,) = det.observe(ev(3, client=THIEF))
    assert v.finding.features["switches"] == 3 and v.finding.features["ua_switches"] == 0


def test_token_shared_among_many_networks() -> None:
    det = detector(replay={"switch_score": 100, "max_networks": 3})
    out = feed(det, [ev(i, client=f"198.51.{i}.1") for i in range(3)])
    assert [v.kind for v in out] == ["token_replay"]
    assert out[0].finding.features["networks"] == 3


def test_burst_far_above_the_subjects_learned_baseline() -> None:
    det = detector(rate={"min_requests": 20, "bucket_s": 10})
    t, events = 0.0, []
    for _ in range(30):  # five minutes of ~3 requests per 10 s
        events += [ev(t + i) for i in range(3)]
        t += 10
    assert feed(det, events) == []
    burst = [ev(t + i * 0.01) for i in range(40)]
    out = feed(det, burst)
    assert [v.kind for v in out] == ["rate"]
    f = out[0].finding
    assert f.key_type == KEY_SUB and f.key == "alice"
    assert f.features["baseline_mean"] < 5 and f.features["requests"] == 20
    assert "learned baseline" in f.explain()


def test_a_burst_is_not_learned_as_normal() -> None:
    """Clipped learning: after a burst bucket the threshold stays near where it was."""
    det = detector(rate={"min_requests": 5})
    sig = det.signals[1]
    t = 0.0
    for _ in range(20):
        feed(det, [ev(t + i) for i in range(2)])
        t += 10
    feed(det, [ev(t + i * 0.01) for i in range(500)])
    t += 10
    det.observe(ev(t))
    st = sig.table.get("alice")
    assert st is not None and st.mean < 10


def test_enumeration_of_sequential_ids() -> None:
    det = detector()
    out = feed(det, [ev(i * 0.2, params=(str(1000 + i),), route="items") for i in range(12)])
    assert [v.kind for v in out] == ["enumeration"]
    f = out[0].finding
    assert f.features["sequential_run"] == 10 and f.features["route"] == "items"


def test_enumeration_of_many_distinct_values() -> None:
    det = detector(enumeration={"max_distinct": 20})
    rng = random.Random(7)
    ids = rng.sample(range(10**6), 25)
    out = feed(det, [ev(i * 0.1, params=(f"x{n}",), route="items") for i, n in enumerate(ids)])
    assert out and out[0].kind == "enumeration"
    assert out[0].finding.features["distinct_values"] == 20


def test_refused_token_storm_and_key_probing_from_one_network() -> None:
    det = detector(refused={"min_refusals": 10})
    out = feed(det, [ev(i * 0.1, client=f"203.0.113.{i}", sub=None, jti=None, outcome="expired")
                     for i in range(10)])
    assert [v.kind for v in out] == ["refused_tokens"]
    assert out[0].finding.key_type == KEY_NET and out[0].finding.key == "203.0.113.0/24"
    det2 = detector(refused={"min_refusals": 10})
    out = feed(det2, [ev(i * 0.1, client="203.0.113.5", sub=None, jti=None,
                         outcome="unknown_kid" if i % 2 else "bad_iss") for i in range(10)])
    assert [v.kind for v in out] == ["key_probing"]
    assert out[0].finding.features["probing"] == 10


def test_one_verdict_per_signal_and_key_per_cooldown_but_the_flag_is_extended() -> None:
    det = detector(cooldown_s=60)
    feed(det, [ev(0), ev(1, client=THIEF, ua=CURL)])
    assert det.observe(ev(2)) == []  # fires again, inside the cooldown: no second event
    assert det.flags.jti["tok-1"].until == pytest.approx(2 + 300)
    assert [v.kind for v in det.observe(ev(70, client=THIEF, ua=CURL))] == ["token_replay"]


def test_dry_run_reports_and_flags_nothing() -> None:
    det = detector(dry_run=True)
    out = feed(det, [ev(0), ev(1, client=THIEF, ua=CURL)])
    assert out and out[0].dry_run and len(det.flags) == 0


def test_flags_expire() -> None:
    det = detector(deny_s=5)
    feed(det, [ev(0), ev(1, client=THIEF, ua=CURL)])
    assert det.sweep(3.0) == 0 and len(det.flags) == 1
    assert det.sweep(6.5) == 1 and len(det.flags) == 0


def test_route_action_overrides_the_default() -> None:
    det = Detector(DetectionConfig(action="log"), {"api": "deny"})
    (v,) = feed(det, [ev(0), ev(1, client=THIEF, ua=CURL)])
    assert v.action == "deny"


# -- false positives -------------------------------------------------------------------------
def test_a_mobile_user_changing_networks_is_not_flagged() -> None:
    det = detector()
    seq = [ev(t) for t in range(30)] + [ev(30 + t, client="172.20.5.5") for t in range(30)]
    assert feed(det, seq) == []


def test_an_office_behind_one_address_is_not_flagged() -> None:
    """Hundreds of users on one NAT address, each with their own token, at human rates."""
    det = detector()
    rng = random.Random(1)
    events = []
    for u in range(300):
        for _k in range(20):
            events.append(ev(rng.uniform(0, 600), client="192.0.2.10", sub=f"user{u}",
                             jti=f"t{u}", ua=f"ua{u % 7}", params=(str(rng.randrange(50)),)))
    events.sort(key=lambda e: e.time)
    assert feed(det, events) == []


def test_normal_users_with_varied_rates_are_never_flagged() -> None:
    """Rates from one request a minute to three a second, each user going back and forth
    over the few dozen items they work on, a new token every five minutes."""
    det = detector()
    rng = random.Random(3)
    events = []
    for u in range(200):
        rate = rng.choice([0.02, 0.2, 1.0, 3.0])  # requests per second
        items = rng.sample(range(10_000), 30)
        t = rng.uniform(0, 10)
        ip = f"10.{u // 250}.{u % 250}.{rng.randrange(1, 250)}"
        while t < 900:
            events.append(ev(t, client=ip, sub=f"u{u}", jti=f"j{u}-{int(t // 300)}",
                             params=(str(rng.choice(items)),), route="items"))
            t += rng.expovariate(rate)
    events.sort(key=lambda e: e.time)
    assert feed(det, events) == []


def test_a_service_client_on_the_allow_list_is_never_flagged() -> None:
    det = detector(allow_clients=["batch"], rate={"min_requests": 10})
    out = feed(det, [ev(i * 0.001, sub=None, jti=None, client_id="batch") for i in range(500)])
    assert out == []


def test_allowed_networks_feed_no_network_signal() -> None:
    det = detector(allow_networks=["192.0.2.0/24"])
    assert feed(det, [ev(0), ev(1, client=THIEF, ua=CURL), ev(2)]) == []


def test_a_few_expired_tokens_are_not_a_storm() -> None:
    det = detector()
    assert feed(det, [ev(i * 5, outcome="expired", sub=None, jti=None) for i in range(10)]) == []
