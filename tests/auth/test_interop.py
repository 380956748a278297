"""Independent implementation: tokens minted by PyJWT are accepted for every supported algorithm;
a hypothesis differential compares our decisions with PyJWT's on generated tokens; and fuzzing
shows only `Rejected` ever escapes the verifier."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from wardgate.auth import compact
from wardgate.auth.errors import Rejected
from wardgate.auth.keys import KeyRing, import_jwks, key_from_secret
from wardgate.auth.verifier import ProviderVerifier, TokenVerifier
from wardgate.config.auth import ProviderConfig

from .helpers import AUD, ISS, Clock, b64, claims, public_jwk

ASYM = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


def _verifier(algs: list[str], keys: list[Any], clock: Any, **over: Any) -> TokenVerifier:
    # a remote provider that is never started: the test fills its key ring directly
    cfg = ProviderConfig.model_validate(dict({
        "name": "main", "issuer": ISS, "audiences": [AUD], "algorithms": algs,
        "jwks_uri": "https://issuer.example/jwks"}, **over))
    ring = KeyRing()
    ring.replace(keys)
    return TokenVerifier([ProviderVerifier(cfg, ring, clock)], 8192)


@pytest.fixture(scope="module")
def all_keys(rsa_key: Any, ec_key: Any, ec384_key: Any, ed_key: Any) -> dict[str, Any]:
    p521 = ec.generate_private_key(ec.SECP521R1())
    out = {a: rsa_key for a in ASYM if a[:2] in ("RS", "PS")}
    out.update({"ES256": ec_key, "ES384": ec384_key, "ES512": p521, "EdDSA": ed_key})
    return out


@pytest.fixture(scope="module")
def interop(all_keys: dict[str, Any]) -> TokenVerifier:
    doc = {"keys": [public_jwk(k, alg, f"k-{alg}") for alg, k in all_keys.items()]}
    keys, problems = import_jwks(doc, ASYM)
    assert not problems and len(keys) == len(ASYM)
    return _verifier(ASYM, keys, time.time)


def _pyjwt(key: Any, alg: str, kid: str, **over: Any) -> bytes:
    now = int(time.time())
    body = claims(iat=now, exp=now + 300, scope="orders:read", **over)
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid, "typ": "at+jwt"}).encode()


@pytest.mark.parametrize("alg", ASYM)
def test_pyjwt_minted_tokens_accepted(interop: TokenVerifier, all_keys: dict[str, Any],
                                      alg: str) -> None:
    ident = interop.verify(_pyjwt(all_keys[alg], alg, f"k-{alg}"))
    assert ident.sub == "alice" and "orders:read" in ident.scopes
    assert ident.key is not None and ident.key.alg == alg


@pytest.mark.parametrize("alg", ASYM)
def test_pyjwt_token_under_wrong_kid_refused(interop: TokenVerifier, all_keys: dict[str, Any],
                                             alg: str) -> None:
    other = "RS256" if alg != "RS256" else "PS256"
    with pytest.raises(Rejected) as info:
        interop.verify(_pyjwt(all_keys[alg], alg, f"k-{other}"))
    assert info.value.reason in {"alg_key_mismatch", "bad_signature"}


@pytest.mark.parametrize("alg,size", [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_pyjwt_minted_hmac_tokens_accepted(monkeypatch: pytest.MonkeyPatch, alg: str,
                                           size: int) -> None:
    secret = bytes(range(size))
    monkeypatch.setenv("WG_TEST_HS", "x" * 64)  # placeholder; the ring is filled below
    verifier = _verifier([alg], [key_from_secret(secret, alg)], time.time,
                         jwks_uri=None, secret_env="WG_TEST_HS")
    assert verifier.verify(_pyjwt(secret, alg, "any")).sub == "alice"
    with pytest.raises(ValueError, match="at least"):
        key_from_secret(secret[:-1], alg)


def test_ed448_key_is_eddsa() -> None:
    key = ed448.Ed448PrivateKey.generate()
    signed = jwt.encode(claims(), key, algorithm="EdDSA", headers={"typ": "at+jwt", "kid": "e"})
    jwk = {"kty": "OKP", "crv": "Ed448", "kid": "e", "alg": "EdDSA",
           "x": b64(key.public_key().public_bytes_raw()).decode()}
    keys, problems = import_jwks({"keys": [jwk]}, ["EdDSA"])
    assert not problems
    from .helpers import NOW

    _verifier(["EdDSA"], keys, Clock(NOW)).verify(signed.encode())


# --- differential: our accept/reject decision against PyJWT's, on generated claim sets -------

# seconds from now; the listed values sit on both sides of the 30 s leeway (but 4 s clear of
# its edge, so a slow run cannot flip a decision)
_offset = st.sampled_from([-400, -100, -40, -34, -26, -20, -10, -5, 5, 10, 20, 26, 34, 40, 100,
                           400]) | st.integers(-400, 400).filter(lambda d: abs(abs(d) - 30) > 4
                                                                  and abs(d) > 4)
# weighted towards valid values so the time checks (exp/nbf/iat against leeway) get exercised
_aud = st.sampled_from(["api"] * 4 + [["api", "x"], ["x", "api"], "x", ["x"], "ap", "api2",
                                      ["ap", "i"]])
_iss = st.sampled_from([ISS] * 6 + [ISS + "/", "https://issuer.example.evil",
                                    "https://ISSUER.example"])
_flip = st.sampled_from([None] * 6 + [0, 7, 100, 255])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(exp=_offset, iat=_offset, nbf=st.none() | _offset, aud=_aud, iss=_iss, flip=_flip)
def test_differential_against_pyjwt(rsa_key: Any, interop: TokenVerifier, exp: int, iat: int,
                                    nbf: int | None, aud: Any, iss: str, flip: int | None) -> None:
    now = int(time.time())
    body = claims(exp=now + exp, iat=now + iat, aud=aud, iss=iss)
    if nbf is not None:
        body["nbf"] = now + nbf
    assume(body["exp"] - body["iat"] <= 86400)
    token = jwt.encode(body, rsa_key, algorithm="RS256",
                       headers={"kid": "k-RS256", "typ": "at+jwt"}).encode()
    if flip is not None:
        head, payload, sig = token.split(b".")
        raw = bytearray(base64.urlsafe_b64decode(sig + b"=="))
        raw[flip % len(raw)] ^= 0x01
        token = head + b"." + payload + b"." + b64(bytes(raw))
    try:
        jwt.decode(token, rsa_key.public_key(), algorithms=["RS256"], audience=AUD, issuer=ISS,
                   leeway=30, options={"require": ["exp", "iat", "sub", "iss", "aud"]})
        theirs = True
    except jwt.PyJWTError:
        theirs = False
    try:
        interop.verify(token)
        ours = True
    except Rejected:
        ours = False
    assert ours == theirs, body


# --- fuzzing: nothing but Rejected escapes, whatever the bytes -------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet="ABCab019-_.=+/ \n", max_size=300).map(str.encode))
def test_fuzz_garbage_tokens_only_rejected(data: bytes) -> None:
    verifier = _verifier(["RS256"], [], Clock())
    with pytest.raises(Rejected):
        verifier.verify(data)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "b64", "jwk", "cty", "x"]),
                              _json, max_size=5),
       payload=_json)
def test_fuzz_structured_headers_and_payloads(interop: TokenVerifier, header: dict[str, Any],
                                              payload: Any) -> None:
    token = (b64(json.dumps(header).encode()) + b"." + b64(json.dumps(payload).encode()) + b"."
             + b64(b"\x01" * 64))
    with pytest.raises(Rejected):
        interop.verify(token)


@given(st.binary(max_size=64))
def test_base64url_roundtrip_and_canonical(data: bytes) -> None:
    enc = b64(data)
    assert compact.b64url_decode(enc) == data
    if len(enc) % 4 in (2, 3):
        # setting the lowest unused bit gives a spelling that decodes the same: refused
        alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        j = alphabet.index(enc[-1:]) ^ 1
        with pytest.raises(Rejected):
            compact.b64url_decode(enc[:-1] + alphabet[j:j + 1])
