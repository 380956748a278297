"""Key import rules and the provider/policy configuration that guards them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from wardgate.auth.keys import KeyImportError, KeyRing, import_jwks, key_from_jwk
from wardgate.config.auth import AuthPolicy, ProviderConfig
from wardgate.config.gateway import GatewayConfig

from .helpers import ISS, public_jwk

BASE = {"name": "main", "issuer": ISS, "audiences": ["api"]}


def test_jwk_alg_binds_the_key(rsa_key: Any) -> None:
    key = key_from_jwk(public_jwk(rsa_key, "PS256", "k"), ["RS256", "PS256"])
    assert key.alg == "PS256"


def test_jwk_without_alg_binds_only_when_unambiguous(rsa_key: Any, ec_key: Any) -> None:
    jwk = public_jwk(rsa_key, "RS256", "k")
    del jwk["alg"]
    assert key_from_jwk(jwk, ["RS256", "ES256"]).alg == "RS256"
    with pytest.raises(KeyImportError, match="no alg"):
        key_from_jwk(jwk, ["RS256", "PS256"])  # would verify both: refused
    ecj = public_jwk(ec_key, "ES256", "e")
    del ecj["alg"]
    assert key_from_jwk(ecj, ["ES256", "ES384", "RS256"]).alg == "ES256"  # the curve decides


@pytest.mark.parametrize("mutate,match", [
    (lambda j: j.update(alg="ES256"), "does not fit"),
    (lambda j: j.update(alg="HS256"), "does not fit"),
    (lambda j: j.update(alg="none"), "does not fit"),
    (lambda j: j.update(use="enc"), "use"),
    (lambda j: j.update(key_ops=["encrypt"]), "key_ops"),
    (lambda j: j.update(kty="oct", k="c2VjcmV0"), "kty"),
    (lambda j: j.update(d="AQAB"), "private|import"),
    (lambda j: j.update(kid=7), "kid"),
    (lambda j: j.update(n="AQAB"), "bits|import"),
])
def test_unusable_jwks_entries_refused(rsa_key: Any, mutate: Any, match: str) -> None:
    jwk = public_jwk(rsa_key, "RS256", "k")
    mutate(jwk)
    with pytest.raises(KeyImportError, match=match):
        key_from_jwk(jwk, ["RS256", "ES256"])


def test_weak_rsa_and_wrong_curve_refused(ec384_key: Any) -> None:
    weak = rsa.generate_private_key(65537, 1024)
    with pytest.raises(KeyImportError, match="1024 bits"):
        key_from_jwk(public_jwk(weak, "RS256", "w"), ["RS256"])
    bad_curve = public_jwk(ec384_key, "ES384", "c")
    bad_curve["alg"] = "ES256"
    with pytest.raises(KeyImportError):
        key_from_jwk(bad_curve, ["ES256"])
    k1 = ec.generate_private_key(ec.SECP256K1())
    jwk = {"kty": "EC", "crv": "secp256k1", "kid": "k1", "alg": "ES256",
           "x": "AA", "y": "AA"}
    del k1
    with pytest.raises(KeyImportError):
        key_from_jwk(jwk, ["ES256"])


def test_duplicate_kid_invalidates_the_set(rsa_key: Any, rsa_other: Any) -> None:
    doc = {"keys": [public_jwk(rsa_key, "RS256", "same"), public_jwk(rsa_other, "RS256", "same")]}
    with pytest.raises(KeyImportError, match="duplicate kid"):
        import_jwks(doc, ["RS256"])


def test_bad_entries_skipped_good_kept(rsa_key: Any) -> None:
    doc = {"keys": [public_jwk(rsa_key, "RS256", "ok"), {"kty": "oct", "k": "eA"}, "junk",
                    dict(public_jwk(rsa_key, "RS256", "enc"), use="enc")]}
    keys, problems = import_jwks(doc, ["RS256"])
    assert [k.kid for k in keys] == ["ok"] and len(problems) == 3


@pytest.mark.parametrize("doc", [[], {"keys": {}}, {"k": []}, None, "x"])
def test_not_a_jwk_set(doc: Any) -> None:
    with pytest.raises(KeyImportError):
        import_jwks(doc, ["RS256"])


def test_keyring_lookup_rules(rsa_key: Any, rsa_other: Any) -> None:
    ring = KeyRing()
    a = key_from_jwk(public_jwk(rsa_key, "RS256", "a"), ["RS256"])
    b = key_from_jwk(public_jwk(rsa_other, "RS256", "b"), ["RS256"])
    ring.replace([a])
    assert ring.lookup(None) is a          # one key: a token without kid may use it
    assert ring.lookup("x") is None        # but a named kid must match
    ring.replace([a, b])
    assert ring.lookup(None) is None       # RFC 7515 §4.1.4: ambiguous without kid
    a2 = key_from_jwk(public_jwk(rsa_key, "RS256", "a"), ["RS256"])
    assert ring.replace([a2, b]) == (0, 0) and ring.lookup("a") is a and a.alive
    ring.replace([b])
    assert not a.alive and b.alive


# --- configuration ---------------------------------------------------------------------------

@pytest.mark.parametrize("over,match", [
    ({"algorithms": ["none"]}, "unsupported"),
    ({"algorithms": ["RS256", "HS256"], "jwks_uri": "https://x/j"}, "cannot be mixed"),
    ({"algorithms": ["HS256"], "jwks_uri": "https://x/j"}, "secret"),
    ({"algorithms": ["RS256"], "secret_env": "WG_TEST_S"}, "secret"),
    ({"algorithms": ["HS256", "HS512"], "secret_env": "WG_TEST_S"}, "exactly one HS"),
    ({"algorithms": ["RS256"]}, "exactly one key source"),
    ({"algorithms": ["RS256"], "jwks_uri": "https://x/j", "discovery": True}, "exactly one"),
    ({"algorithms": []}, "at least 1"),
    ({"jwks_uri": "ftp://x/j"}, "http"),
    ({"secret_env": "WG_TEST_UNSET_VAR", "algorithms": ["HS256"]}, "unset"),
    ({"jwks_uri": "https://x/j", "typo": 1}, "Extra inputs"),
    ({"jwks_uri": "https://x/j", "roles_claim": "a..b"}, "dotted"),
    ({"jwks_uri": "https://x/j", "refresh": {"min_interval_s": 100, "max_interval_s": 10}},
     "min_interval_s"),
    ({"jwks_uri": "https://x/j", "min_rsa_bits": 1024}, "greater than or equal"),
    ({"algorithms": ["HS512"], "secret_env": "WG_TEST_S"}, "512 bits"),
])
def test_provider_config_refusals(monkeypatch: pytest.MonkeyPatch, over: dict[str, Any],
                                  match: str) -> None:
    monkeypatch.setenv("WG_TEST_S", "x" * 40)
    monkeypatch.delenv("WG_TEST_UNSET_VAR", raising=False)
    with pytest.raises(ValidationError, match=match):
        ProviderConfig.model_validate(dict(BASE, **over))


def test_hmac_secret_too_short_fails_at_load(tmp_path: Path) -> None:
    from wardgate.auth.keys import key_from_secret

    with pytest.raises(ValueError, match="256 bits"):
        key_from_secret(b"short", "HS256")


@pytest.mark.parametrize("policy,match", [
    ({"providers": []}, "at least 1"),
    ({"providers": ["main"], "require": {"provider": "other"}}, "not in providers"),
    ({"providers": ["main"], "methods": {"FETCH": {}}}, "unknown method"),
    ({"providers": ["main"], "require": {"claims": [{"claim": "a"}]}}, "exactly one"),
    ({"providers": ["main"], "require": {"claims": [{"claim": "a", "equals": 1, "exists": True}]}},
     "exactly one"),
    ({"providers": ["main"], "require": {"claims": [{"claim": "a", "regex": "("}]}}, "regex"),
    ({"providers": ["main"], "require": {"any": []}}, "at least 1"),
    ({"providers": ["main"], "token": {"header": False}}, "at least one token source"),
    ({"providers": ["main"], "token": {"cookie": "a b"}}, "pattern"),
    ({"providers": ["main"], "payload_header": "X Bad"}, "header name"),
    ({"providers": ["main"], "require": {"scope": ["x"]}}, "Extra inputs"),
])
def test_auth_policy_refusals(policy: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        AuthPolicy.model_validate(policy)


def test_claim_rule_in_alias_and_null_equals() -> None:
    p = AuthPolicy.model_validate({"providers": ["m"], "require": {"claims": [
        {"claim": "lvl", "in": [1, 2]}, {"claim": "x", "equals": None}]}})
    ops = [r.operator() for r in p.require.claims]
    assert ops == [("in", [1, 2]), ("equals", None)]


def test_design_minimal_example_validates() -> None:
    cfg = GatewayConfig.model_validate({
        "listen": "127.0.0.1:8080",
        "providers": [{"name": "main", "issuer": "http://127.0.0.1:9000", "audiences": ["api"],
                       "algorithms": ["RS256", "ES256", "EdDSA"],
                       "jwks_uri": "http://127.0.0.1:9000/.well-known/jwks.json", "leeway_s": 30}],
        "upstreams": [{"name": "orders", "targets": ["http://127.0.0.1:9101"]}],
        "routes": [{"name": "orders", "match": {"path_prefix": "/orders", "methods": ["GET", "POST"]},
                    "upstream": "orders",
                    "auth": {"providers": ["main"], "require": {"scopes": ["orders:read"]}},
                    "claims_to_headers": {"sub": "X-User-Id", "roles": "X-User-Roles"}}]})
    auth = cfg.routes[0].auth
    assert isinstance(auth, AuthPolicy) and auth.provider_names() == {"main"}
