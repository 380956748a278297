"""Identity's scope/role sets: shared between tokens with the same string, bounded memo."""

from __future__ import annotations

from wardgate.auth import identity
from wardgate.auth.identity import Identity


def _ident(**claims: object) -> Identity:
    return Identity("main", dict(claims), b"e30", ("roles",), None, 1.0)


def test_same_scope_string_shares_one_set() -> None:
    a = _ident(scope="a b  c")
    b = _ident(scope="a b  c")
    assert a.scopes == frozenset({"a", "b", "c"}) and a.scopes is b.scopes


def test_scope_and_scp_union_and_lists() -> None:
    assert _ident(scope="a", scp=["b", 1, "c"]).scopes == frozenset({"a", "b", "c"})
    assert _ident(scp="x y").scopes == frozenset({"x", "y"})
    assert _ident(scope=5).scopes == frozenset()
    assert _ident(roles="admin ops").roles == frozenset({"admin", "ops"})


def test_memo_is_bounded_and_skips_long_strings() -> None:
    identity._SETS.clear()
    for i in range(identity._SETS_MAX * 3):
        assert _ident(scope=f"s{i} t").scopes == frozenset({f"s{i}", "t"})
        assert len(identity._SETS) <= identity._SETS_MAX
    long = " ".join(f"scope{i}" for i in range(200))
    assert len(long) > identity._SETS_MAX_LEN
    assert len(_ident(scope=long).scopes) == 200
    assert long not in identity._SETS


def test_sub_hash_is_an_hmac_under_the_set_key() -> None:
    import hashlib
    import hmac

    saved = identity._SUB_KEY
    try:
        identity.set_sub_hash_key(b"k" * 32)
        ident = Identity("corp", {"sub": "alice"}, b"", (), None, 0.0)
        assert ident.sub_hash == hmac.new(b"k" * 32, b"corp\0alice", hashlib.sha256).hexdigest()[:16]
        identity.set_sub_hash_key(b"j" * 32)
        assert Identity("corp", {"sub": "alice"}, b"", (), None, 0.0).sub_hash != ident.sub_hash
        assert Identity("corp", {}, b"", (), None, 0.0).sub_hash == "-"
    finally:
        identity.set_sub_hash_key(saved)
