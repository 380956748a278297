"""The revocation set and its events, without I/O (wardgate.revoke.revset / events / health)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.auth.cache import TokenCache
from wardgate.auth.identity import Identity
from wardgate.revoke import BadEvent, Revocation, RevocationSet
from wardgate.revoke.health import FeedHealth
from wardgate.revoke.poll import FeedError, parse_page
from wardgate.revoke.stream import parse_entries

NOW = 1_700_000_000.0


def ident(jti: str = "j1", sub: str = "alice", client: str = "web", iat: object = NOW - 10,
          provider: str = "main") -> Identity:
    claims = {"jti": jti, "sub": sub, "client_id": client, "iat": iat, "exp": NOW + 600}
    return Identity(provider, claims, b"x", ("roles",), None, NOW + 600)


def test_jti_revoked_until_exp_plus_leeway() -> None:
    s = RevocationSet("main", leeway_s=30)
    assert not s.check(ident())
    changed = s.apply([Revocation("jti", "j1", until=NOW + 600, seq=4)], NOW)
    assert [e.value for e in changed] == ["j1"] and s.cursor == 4
    assert s.check(ident()) and not s.check(ident(jti="j2"))
    assert s.expire(NOW + 620) == 0  # still inside the verifier's leeway
    assert s.expire(NOW + 631) == 1 and not s.check(ident())


def test_subject_before_t_covers_only_older_tokens() -> None:
    s = RevocationSet("main")
    s.apply([Revocation("sub", "alice", until=NOW + 700, before=NOW, seq=1)], NOW)
    assert s.check(ident(iat=NOW - 1))
    assert not s.check(ident(iat=NOW))          # issued at T: not before T
    assert not s.check(ident(iat=NOW + 5))      # logged in again afterwards
    assert not s.check(ident(sub="bob", iat=NOW - 1))
    assert s.check(ident(iat=None))             # no iat: cannot show it is newer
    assert s.check(ident(iat="1"))


def test_client_before_t_and_azp() -> None:
    s = RevocationSet("main")
    s.apply([Revocation("client", "web", until=NOW + 700, before=NOW, seq=1)], NOW)
    assert s.check(ident(iat=NOW - 1)) and not s.check(ident(client="other", iat=NOW - 1))
    oidc = Identity("main", {"azp": "web", "iat": NOW - 1, "sub": "x"}, b"x", (), None, NOW + 9)
    assert s.check(oidc)


def test_other_provider_is_not_touched() -> None:
    s = RevocationSet("main")
    s.apply([Revocation("jti", "j1", until=NOW + 60), Revocation("sub", "alice", until=NOW + 60,
                                                                  before=NOW)], NOW)
    assert not s.check(ident(provider="partner", iat=NOW - 100))


def test_apply_is_idempotent_and_skips_expired() -> None:
    s = RevocationSet("main")
    evs = [Revocation("jti", "a", until=NOW + 60, seq=1),
           Revocation("jti", "old", until=NOW - 1, seq=2),
           Revocation("sub", "alice", until=NOW + 60, before=NOW - 5, seq=3)]
    assert len(s.apply(evs, NOW)) == 2
    assert s.apply(evs, NOW) == [] and len(s) == 2 and s.cursor == 3
    # a later "before" for the same subject widens it
    assert len(s.apply([Revocation("sub", "alice", until=NOW + 90, before=NOW, seq=9)], NOW)) == 1
    assert s.subs["alice"] == (NOW, NOW + 90)


def test_cache_entries_dropped_by_predicate() -> None:
    cache = TokenCache(10)
    s = RevocationSet("main")
    for i in range(3):
        tok = b"t%d" % i
        cache.put(tok, ident(jti=f"j{i}"))
        cache.put(tok, ident(jti=f"j{i}"))  # second sighting: admitted
    assert len(cache) == 3
    s.apply([Revocation("jti", "j1", until=NOW + 60)], NOW)
    assert cache.drop_where(s.check) == 1 and len(cache) == 2


@pytest.mark.parametrize("doc", [
    {"kind": "token", "value": "x", "until": 1},
    {"kind": "jti", "value": "", "until": 1},
    {"kind": "jti", "value": "x" * 257, "until": 1},
    {"kind": "jti", "value": "x", "until": float("nan")},
    {"kind": "jti", "value": "x", "until": True},
    {"kind": "sub", "value": "x", "until": 5},            # no before
    {"kind": "jti", "value": "x"},
    {"kind": "jti", "value": 3, "until": 1},
    {"kind": "jti", "value": "x", "until": 1, "seq": -1},
    ["jti"],
])
def test_bad_events_are_refused(doc: object) -> None:
    with pytest.raises(BadEvent):
        Revocation.from_wire(doc)


@given(st.sampled_from(["jti", "sub", "client"]), st.text(min_size=1, max_size=256),
       st.integers(0, 2**40), st.integers(1, 2**40), st.integers(0, 2**40))
def test_wire_round_trip(kind: str, value: str, until: int, before: int, seq: int) -> None:
    ev = Revocation(kind, value, until=until, before=before if kind != "jti" else 0, seq=seq)
    assert Revocation.from_wire(ev.to_wire()) == ev


def test_poll_page_and_stream_entries_parse() -> None:
    epoch, cursor, evs, more, bad = parse_page({"epoch": "e", "cursor": 7, "more": False,
                                                "events": [{"kind": "jti", "value": "a",
                                                            "until": 5, "seq": 7},
                                                           {"kind": "nope"}]})
    assert (epoch, cursor, [e.value for e in evs], more, bad) == ("e", 7, ["a"], False, 1)
    for page in ({"epoch": "e", "cursor": "7", "events": []}, [], {"epoch": 1, "cursor": 1,
                                                                     "events": []}):
        with pytest.raises(FeedError):
            parse_page(page)
    reply = [[b"k", [[b"1-0", [b"s", b"1", b"e", b'{"kind":"jti","value":"a","until":9}']],
                     [b"2-0", [b"s", b"2", b"e", b"{not json"]]]]]
    evs2, last, bad2 = parse_entries(reply)
    assert [e.value for e in evs2] == ["a"] and last == b"2-0" and bad2 == 1
    assert parse_entries(None) == ([], None, 0)


def test_health_goes_stale_after_the_bound_and_logs_once(capsys: pytest.CaptureFixture[str]) -> None:
    h = FeedHealth("poll", max_staleness_s=5)
    assert not h.fresh
    h.ok(NOW)
    assert h.fresh
    h.tick(NOW + 5)
    assert h.fresh
    h.failed("boom")
    h.tick(NOW + 6)
    h.tick(NOW + 7)
    assert not h.fresh
    h.ok(NOW + 8)
    err = capsys.readouterr().err
    assert err.count("revocation_feed_stale") == 1 and err.count("revocation_feed_fresh") == 2
