"""The issuer's login signals (wardgate.detect.login) on hand-made attempt sequences: the
arithmetic of each feature, its threshold, the allow list, cooldowns, dry run, memory bounds."""

from __future__ import annotations

from typing import Any

from wardgate.config.logindetect import IssuerDetection
from wardgate.detect.login import KEY_USER, Attempt, LoginDetector
from wardgate.detect.verdict import KEY_NET


def det(**kw: Any) -> LoginDetector:
    return LoginDetector(IssuerDetection.model_validate(kw))


def fail(t: float, user: str, addr: str = "10.1.2.3", pw: bytes = b"", net: str | None = None
         ) -> Attempt:
    return Attempt(t, addr, net or addr.rsplit(".", 1)[0] + ".0/24", user, False, pw)


def ok(t: float, user: str, addr: str = "10.1.2.3") -> Attempt:
    return Attempt(t, addr, addr.rsplit(".", 1)[0] + ".0/24", user, True)


def test_stuffing_fires_at_the_tenth_distinct_failing_username_from_one_network() -> None:
    d = det(action="deny")
    got = []
    for i in range(10):
        # several addresses of one /24, each username once, each its own password
        got.append(d.observe(fail(i * 0.1, f"u{i}", f"10.1.2.{i + 1}", pw=b"p%d" % i)))
    assert all(not g for g in got[:9])
    (v,) = got[9]
    f = v.finding
    assert f.kind == "credential_stuffing" and f.key_type == KEY_NET and f.key == "10.1.2.0/24"
    assert f.score == 1.0 and v.action == "deny"
    assert f.features == {"usernames": 10, "usernames_tried": 10, "failures": 10,
                          "attempts": 10, "failing_share": 1.0, "addresses": 10,
                          "window_s": 300.0, "distinct_passwords": 10}
    # the network is flagged for deny_s: another /24 is not
    assert d.flagged("10.1.2.0/24", 1.0) is not None
    assert d.flagged("10.1.2.0/24", 0.9 + 300.0) is None
    assert d.flagged("10.1.3.0/24", 1.0) is None


def test_the_same_username_failing_often_is_not_stuffing() -> None:
    d = det()
    assert not any(d.observe(fail(i, "alice", pw=b"x%d" % i)) for i in range(50))


def test_failing_share_keeps_an_office_where_many_sign_in_quiet() -> None:
    # 30 people of one office sign in; later 12 of them fail once (and have not signed in
    # again yet): 12 failing usernames, but 12 / 30 tried < 0.5
    d = det()
    t = 0.0
    for i in range(30):
        assert not d.observe(ok(t, f"u{i}", "10.9.9.9"))
        t += 1
    for i in range(12):
        assert not d.observe(fail(t, f"u{i}", "10.9.9.9", pw=b"typo%d" % i))
        t += 1


def test_stuffing_with_a_few_successes_still_fires() -> None:
    # a leaked list: 1 in 10 still works; the failing share stays at 0.9
    d = det()
    fired = []
    for i in range(20):
        a = ok(i, f"u{i}") if i % 10 == 5 else fail(i, f"u{i}", pw=b"%d" % i)
        fired += d.observe(a)
    assert fired and fired[0].finding.features["failing_share"] >= 0.5


def test_people_who_mistype_and_then_sign_in_are_no_evidence() -> None:
    # even with no share required: 20 people of one office each fail once, then sign in
    d = det(stuffing={"min_failure_ratio": 0})
    for i in range(20):
        assert not d.observe(fail(2 * i, f"u{i}", "10.9.9.9", pw=b"typo"))
        assert not d.observe(ok(2 * i + 1, f"u{i}", "10.9.9.9"))


def test_signing_in_to_an_own_account_again_and_again_does_not_hide_stuffing() -> None:
    # a per-attempt share would be 1/3 here; distinct usernames count the own account once
    d = det()
    fired = []
    for i in range(12):
        fired += d.observe(ok(3 * i, "mine"))
        fired += d.observe(ok(3 * i + 1, "mine"))
        fired += d.observe(fail(3 * i + 2, f"victim{i}", pw=b"%d" % i))
    (v,) = fired
    assert v.finding.features["usernames"] == 10 and v.finding.features["usernames_tried"] == 11


def test_the_window_starts_over() -> None:
    d = det(stuffing={"window_s": 10, "min_usernames": 5})
    for i in range(4):
        assert not d.observe(fail(i * 3.0, f"a{i}"))       # t = 0, 3, 6, 9
    assert not d.observe(fail(10.0, "a4"))                  # a new window: 1 username
    out = [d.observe(fail(10.0 + i, f"b{i}")) for i in range(4)]
    assert out[-1] and out[-1][0].finding.features["usernames"] == 5


def test_few_passwords_over_many_usernames_is_password_spraying() -> None:
    d = det()
    out = []
    for i in range(10):
        out += d.observe(fail(i, f"u{i}", pw=b"Winter2026!" if i % 2 else b"Summer2026!"))
    (v,) = out
    assert v.finding.kind == "password_spraying" and v.finding.key_type == KEY_NET
    assert v.finding.features["distinct_passwords"] == 2
    # 2 / 10 <= 0.25; with 3 passwords out of 10 (0.3) it is stuffing again
    d = det()
    out = []
    for i in range(10):
        out += d.observe(fail(i, f"u{i}", pw=b"p%d" % (i % 3)))
    assert out[0].finding.kind == "credential_stuffing"


def test_without_password_tags_one_network_is_always_stuffing() -> None:
    d = det()
    out = []
    for i in range(10):
        out += d.observe(fail(i, f"u{i}"))  # the adapter sends no tag: password_tags false
    assert out[0].finding.kind == "credential_stuffing"
    assert "distinct_passwords" not in out[0].finding.features


def test_one_username_failing_from_five_networks_is_spraying_and_never_enforced() -> None:
    d = det(action="deny")
    out = []
    for n in range(5):
        out.append(d.observe(fail(n * 0.2, "victim", f"10.{n}.0.1")))
    assert all(not o for o in out[:4])
    (v,) = out[4]
    f = v.finding
    assert f.kind == "password_spraying" and f.key_type == KEY_USER and f.key == "victim"
    assert f.features["networks"] == 5 and f.features["failures"] == 5
    assert f.features["networks_seen"][0] == "10.0.0.0/24"
    assert v.action == "log"  # a username is never locked out
    assert not d.flags.net and not d.flags.sub


def test_a_user_mistyping_on_a_laptop_and_a_phone_is_quiet() -> None:
    d = det()
    seq = [fail(0, "bob", "10.1.1.1"), fail(5, "bob", "10.1.1.1"), ok(9, "bob", "10.1.1.1"),
           fail(60, "bob", "10.2.2.2"), ok(65, "bob", "10.2.2.2")]
    assert not any(d.observe(a) for a in seq)


def test_allow_listed_network_feeds_no_network_signal() -> None:
    d = det(action="deny", allow_networks=["10.1.2.0/24"])
    assert not any(d.observe(fail(i, f"u{i}", f"10.1.2.{i + 1}")) for i in range(40))
    assert d.flagged("10.1.2.0/24", 1.0) is None


def test_cooldown_one_verdict_per_key_and_the_flag_is_extended() -> None:
    d = det(action="deny", cooldown_s=60, deny_s=100)
    verdicts = [v for i in range(30) for v in d.observe(fail(i, f"u{i}"))]
    assert len(verdicts) == 1
    f = d.flagged("10.1.2.0/24", 29.0)
    assert f is not None and f.until == 129.0


def test_dry_run_reports_and_flags_nothing() -> None:
    d = det(action="deny", dry_run=True)
    verdicts = [v for i in range(10) for v in d.observe(fail(i, f"u{i}"))]
    assert verdicts and verdicts[0].dry_run
    assert d.flagged("10.1.2.0/24", 9.0) is None


def test_ipv6_networks_are_per_48() -> None:
    d = det()
    out = []
    for i in range(10):
        out += d.observe(Attempt(i, f"2001:db8:1:{i}::1", "2001:db8:1::/48", f"u{i}", False))
    assert out and out[0].finding.key == "2001:db8:1::/48"


def test_memory_stays_bounded_under_many_networks_and_usernames() -> None:
    d = det(max_keys=1000)
    for i in range(200_000):
        d.observe(fail(i * 0.001, f"u{i}", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                       pw=b"%d" % i))
    sizes = d.sizes()
    assert sizes["NetworkFailures"] <= 1000 and sizes["UserNetworks"] <= 1000
    # one network's tables are capped too
    d = det()
    for i in range(10_000):
        d.observe(fail(i * 0.001, f"u{i}", pw=b"%d" % i))
    st = d.signals[0].table.get("10.1.2.0/24")
    assert st is not None and len(st.users) <= 256 and len(st.tags) <= 256  # type: ignore[union-attr]
