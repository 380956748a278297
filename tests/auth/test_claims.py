"""Differential test of ProviderVerifier.claims_ok, our own claim checks, against joserfc's stock
JWTClaimsRegistry with the options the verifier gives it: on generated claim sets (valid ones,
and values of every wrong type and on both sides of every time boundary) both must accept and
refuse exactly the same tokens; and check_claims must give the reason codes the library path
(joserfc, then the lifetime cap) gives."""

from __future__ import annotations

import functools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from wardgate.auth.errors import Rejected
from wardgate.auth.keys import KeyRing
from wardgate.auth.verifier import ProviderVerifier
from wardgate.config.auth import ProviderConfig

from .helpers import AUD, ISS, NOW, Clock

_CONFIGS = {
    "default": {},
    "lax": {"required_claims": [], "leeway_s": 0, "max_lifetime_s": None},
    "strict": {"required_claims": ["jti", "nbf", "scope", "iat", "sub", "aud", "tenant"],
               "audiences": [AUD, "other"], "leeway_s": 300, "max_lifetime_s": 600},
}


@functools.cache
def _provider(name: str) -> ProviderVerifier:
    cfg = ProviderConfig.model_validate(dict({
        "name": "main", "issuer": ISS, "audiences": [AUD], "algorithms": ["RS256"],
        "jwks_uri": "https://issuer.example/jwks"}, **_CONFIGS[name]))
    return ProviderVerifier(cfg, KeyRing(), Clock(NOW))


def _stock_registry(cfg: ProviderConfig) -> JWTClaimsRegistry:
    """The options verifier.py documents, built independently, on joserfc's own class."""
    options: dict[str, Any] = {c: {"essential": True} for c in cfg.required_claims}
    options["exp"] = {"essential": True}
    options["iss"] = {"essential": True, "value": cfg.issuer}
    options["aud"] = {"essential": True, "values": list(cfg.audiences)}
    return JWTClaimsRegistry(now=lambda: NOW, leeway=cfg.leeway_s, **options)  # type: ignore[arg-type,return-value]


def _library_accepts(registry: JWTClaimsRegistry, claims: dict[str, Any]) -> bool:
    try:
        registry.validate(claims)
    except (JoseError, TypeError, ValueError):
        return False
    return True


def _library_outcome(p: ProviderVerifier, claims: dict[str, Any]) -> tuple[str, Any]:
    """check_claims as it was before claims_ok: joserfc decides, then the lifetime cap."""
    try:
        p.library_check(claims)
        exp = float(claims["exp"])
        if exp - NOW > (p.cfg.max_lifetime_s or 10 * 366 * 86400.0) + p.cfg.leeway_s:
            return "rejected", "lifetime"
        iat = claims.get("iat")
        if iat is not None and exp - float(iat) > (p.cfg.max_lifetime_s or 10 * 366 * 86400.0):
            return "rejected", "lifetime"
    except Rejected as exc:
        return "rejected", exc.reason
    except OverflowError:
        return "rejected", "lifetime"
    return "ok", exp


def _outcome(p: ProviderVerifier, claims: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", p.check_claims(claims)
    except Rejected as exc:
        return "rejected", exc.reason


_ABSENT = object()
_ODD = [None, True, False, 0, 1, -1, 0.0, "", "x", [], [""], {}, {"a": 1}, 10**400, -10**400,
        math.inf, -math.inf, math.nan, 1e300, -0.0]
_odd = st.sampled_from(_ODD)


def _edges(lee: int) -> list[Any]:
    n = int(NOW)
    return [n - lee, n + lee, n - lee - 1, n - lee + 1, n + lee - 1, n + lee + 1,
            NOW - lee - 0.5, NOW - lee + 0.5, NOW + lee - 0.5, NOW + lee + 0.5,
            n - 600, n + 600, n + 601, n - 86400, n + 86400, n + 86400 + lee, n + 86401 + lee,
            str(n), float(n), n]


def _time(lee: int) -> st.SearchStrategy[Any]:
    n = int(NOW)
    edges = st.sampled_from(_edges(lee))
    return (edges | edges | st.integers(n - 100_000, n + 100_000)
            | st.floats(NOW - 100_000, NOW + 100_000) | _odd)


_strings = st.sampled_from(["alice", "api", "other", "API", ISS, "", " api", "x y"])
_AUDS = [AUD, "other", "", "x", "API", "ap", [AUD, 1], [1, AUD], [AUD, None], [AUD, [AUD]],
         [AUD, ""], ["", "x"], [AUD, AUD], ["other"], [], [[]], {AUD: AUD}]
_aud = (st.sampled_from(_AUDS)
        | st.lists(_strings | _odd, max_size=3) | _odd)
_iss = st.sampled_from([ISS, ISS, ISS + "/", ISS.upper(), "", [ISS]]) | _odd
_text = _strings | st.lists(_strings, max_size=2) | _odd


def _valid_time(lo: float, hi: float) -> st.SearchStrategy[Any]:
    return st.integers(math.ceil(lo), math.floor(hi)) | st.floats(lo, hi)


@functools.cache
def _claims(lee: int) -> st.SearchStrategy[dict[str, Any]]:
    """Claim sets where each claim is mostly valid, sometimes anything, sometimes absent: about
    one in four sets passes every check, the rest fail on one claim or several."""
    def field(valid: st.SearchStrategy[Any], anything: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.integers(0, 19).flatmap(
            lambda i: valid if i < 14 else anything if i < 19 else st.just(_ABSENT))
    names = st.text(min_size=1, max_size=4)
    fields = {
        "iss": field(st.just(ISS), _iss),
        "aud": field(st.sampled_from([AUD, "other", [AUD], [AUD, "x"], ["x", "other"]]), _aud),
        "exp": field(_valid_time(NOW - lee + 0.5, NOW + 600), _time(lee)),
        "nbf": field(_valid_time(NOW - 1000, NOW + lee), _time(lee)),
        "iat": field(_valid_time(NOW - 1000, NOW + lee), _time(lee)),
        "sub": field(names, _text), "jti": field(names, _text), "scope": field(names, _text),
        "tenant": field(names, _text),
    }
    return st.tuples(st.fixed_dictionaries(fields), st.permutations(list(fields))).map(
        lambda t: {k: t[0][k] for k in t[1] if t[0][k] is not _ABSENT})


@pytest.mark.parametrize("config", list(_CONFIGS))
@settings(max_examples=1000, deadline=None)
@given(data=st.data())
def test_claims_ok_matches_joserfc_registry(config: str, data: st.DataObject) -> None:
    p = _provider(config)
    claims = data.draw(_claims(p.cfg.leeway_s))
    accepted = p.claims_ok(claims, NOW) is not None
    assert accepted == _library_accepts(_stock_registry(p.cfg), claims), claims
    assert _outcome(p, claims) == _library_outcome(p, claims), claims


@pytest.mark.parametrize("config", list(_CONFIGS))
def test_claims_ok_accepts_a_plain_valid_token(config: str) -> None:
    p = _provider(config)
    n = int(NOW)
    claims = {"iss": ISS, "aud": [AUD, "x"], "sub": "alice", "jti": "j1", "iat": n - 5,
              "nbf": n - 5, "exp": n + 300, "scope": "a b", "tenant": "t"}
    assert _library_accepts(_stock_registry(p.cfg), claims)
    assert p.check_claims(claims) == float(n + 300)


@pytest.mark.parametrize("claims", [
    {"exp": 10**400},        # integers beyond any float: refused, never an OverflowError
    {"iat": -10**400},
    {"exp": 10**400, "iat": -10**400},
])
def test_huge_integer_times_are_lifetime_errors(claims: dict[str, Any]) -> None:
    p = _provider("default")
    base = {"iss": ISS, "aud": AUD, "sub": "alice", "iat": int(NOW), "exp": int(NOW) + 60}
    with pytest.raises(Rejected) as info:
        p.check_claims(base | claims)
    assert info.value.reason == "lifetime"


def _sweep_cases() -> list[tuple[str, str, Any]]:
    out = []
    for config in _CONFIGS:
        lee = int(_CONFIGS[config].get("leeway_s", 30))
        for name in ("exp", "nbf", "iat"):
            out += [(config, name, v) for v in _edges(lee) + _ODD]
        out += [(config, "aud", v) for v in _AUDS + _ODD]
        out += [(config, "iss", v) for v in [ISS + "/", ISS.upper(), [ISS]] + _ODD]
        for name in ("sub", "jti", "scope", "tenant"):
            out += [(config, name, v) for v in ["alice", " ", ["a"]] + _ODD]
        out += [(config, name, _ABSENT) for name in
                ("iss", "aud", "exp", "nbf", "iat", "sub", "jti", "scope", "tenant")]
    return out


@pytest.mark.parametrize("config,name,value", _sweep_cases())
def test_claims_ok_matches_joserfc_one_claim_off(config: str, name: str, value: Any) -> None:
    """Every edge and odd value in each claim of an otherwise valid set, exhaustively."""
    p = _provider(config)
    n = int(NOW)
    claims = {"iss": ISS, "aud": AUD, "sub": "alice", "jti": "j1", "iat": n - 5, "nbf": n - 5,
              "exp": n + 300, "scope": "a b", "tenant": "t"}
    if value is _ABSENT:
        del claims[name]
    else:
        claims[name] = value
    accepted = p.claims_ok(claims, NOW) is not None
    assert accepted == _library_accepts(_stock_registry(p.cfg), claims)
    assert _outcome(p, claims) == _library_outcome(p, claims)
