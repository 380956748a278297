"""JOSE parsing under generated input: whatever the token or key-set document, the verifier and
the JWKS importer raise only their typed errors (Rejected, KeyImportError), never anything else.

tests/auth/test_interop.py fuzzes raw bytes; here the inputs are near-valid: real base64url
segments around generated JSON, signed with a real key so that claim checks run, and key sets
built from JWK-shaped objects with wrong types, sizes and members.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given
from hypothesis import strategies as st

from tests.auth.helpers import AUD, ISS, public_jwk
from tests.fuzz.conftest import fuzz_settings
from wardgate.auth.errors import Rejected
from wardgate.auth.keys import KeyImportError, KeyRing, import_jwks
from wardgate.auth.verifier import ProviderVerifier, TokenVerifier
from wardgate.config.auth import ProviderConfig

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

_json: Any = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=10)


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


class _Clock:
    def __call__(self) -> float:
        return time.time()


def _verifier() -> TokenVerifier:
    cfg = ProviderConfig.model_validate({"name": "main", "issuer": ISS, "audiences": [AUD],
                                         "algorithms": ["RS256", "ES256", "EdDSA"],
                                         "jwks_uri": "https://issuer.example/jwks"})
    keys, _ = import_jwks({"keys": [public_jwk(KEY, "RS256", "k1")]}, ["RS256"])
    ring = KeyRing()
    ring.replace(keys)
    return TokenVerifier([ProviderVerifier(cfg, ring, _Clock())], 8192)


VERIFIER = _verifier()
_header = st.fixed_dictionaries(
    {}, optional={"alg": st.sampled_from(["RS256", "none", "HS256", "ES256"]) | _json,
                  "kid": st.sampled_from(["k1", "k2"]) | _json,
                  "typ": st.sampled_from(["at+jwt", "JWT", "jwt"]) | _json,
                  "crit": _json, "b64": _json, "jwk": _json, "cty": _json, "x5u": _json})
_now = int(time.time())  # at import: exp leaves an hour, longer than the whole suite
_claims = st.fixed_dictionaries(
    {}, optional={"iss": st.just(ISS) | _json, "aud": st.just(AUD) | _json,
                  "sub": st.just("alice") | _json,
                  "exp": st.just(_now + 3600) | _json, "nbf": st.just(_now) | _json,
                  "iat": st.just(_now) | _json, "jti": _json, "scope": _json})


@fuzz_settings()
@given(header=_header | _json, claims=_claims | _json, sign=st.booleans(),
       tail=st.sampled_from([b"", b".", b"=", b" ", b".x"]))
def test_near_valid_tokens_only_rejected_or_verified(header: Any, claims: Any, sign: bool,
                                                     tail: bytes) -> None:
    head = _b64(json.dumps(header).encode()) + b"." + _b64(json.dumps(claims).encode())
    sig = KEY.sign(head, padding.PKCS1v15(), hashes.SHA256()) if sign else b"\x00" * 256
    token = head + b"." + _b64(sig) + tail
    try:
        VERIFIER.verify(token)
    except Rejected:
        pass


_jwk = st.fixed_dictionaries(
    {}, optional={"kty": st.sampled_from(["RSA", "EC", "OKP", "oct"]) | _json,
                  "kid": st.sampled_from(["a", "b"]) | _json,
                  "alg": st.sampled_from(["RS256", "ES256", "EdDSA", "none"]) | _json,
                  "use": st.sampled_from(["sig", "enc"]) | _json,
                  "n": st.binary(max_size=300).map(lambda b: _b64(b).decode()) | _json,
                  "e": st.sampled_from(["AQAB", "Aw", ""]) | _json,
                  "crv": st.sampled_from(["P-256", "Ed25519", "P-521"]) | _json,
                  "x": st.binary(max_size=70).map(lambda b: _b64(b).decode()) | _json,
                  "y": st.binary(max_size=70).map(lambda b: _b64(b).decode()) | _json,
                  "d": _json, "key_ops": _json})


@fuzz_settings()
@given(doc=st.fixed_dictionaries({"keys": st.lists(_jwk | _json, max_size=4)}) | _json)
def test_jwks_documents_only_import_or_key_import_error(doc: Any) -> None:
    try:
        keys, problems = import_jwks(doc, ["RS256", "ES256", "EdDSA"], 2048)
    except KeyImportError:
        return
    assert all(isinstance(p, str) for p in problems)
    ring = KeyRing()
    ring.replace(keys)


def test_the_valid_shapes_are_reachable() -> None:
    """The strategies above can produce a passing token and a usable key (not only garbage)."""
    head = _b64(json.dumps({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}).encode()) + b"." + \
        _b64(json.dumps({"iss": ISS, "aud": AUD, "sub": "alice", "exp": _now + 3600,
                         "iat": _now, "nbf": _now, "jti": "j"}).encode())
    token = head + b"." + _b64(KEY.sign(head, padding.PKCS1v15(), hashes.SHA256()))
    VERIFIER.verify(token)
    with pytest.raises(KeyImportError):
        import_jwks({"keys": "x"}, ["RS256"], 2048)


# --- DPoP proofs (RFC 9449): only ProofError, whatever the header, embedded key and claims ----

def _dpop_verifier() -> Any:
    from wardgate.dpop.proof import ProofVerifier

    return ProofVerifier(["RS256", "ES256", "EdDSA"], max_age_s=60, max_future_s=5)


DPOP = _dpop_verifier()
_dpop_header = st.fixed_dictionaries(
    {}, optional={"typ": st.sampled_from(["dpop+jwt", "JWT"]) | _json,
                  "alg": st.sampled_from(["RS256", "ES256", "none"]) | _json,
                  "jwk": st.just(public_jwk(KEY, "RS256", "k1")) | _jwk | _json,
                  "kid": _json, "crit": _json})
_dpop_claims = st.fixed_dictionaries(
    {}, optional={"htm": st.sampled_from(["GET", "POST"]) | _json,
                  "htu": st.sampled_from(["http://127.0.0.1/echo", "http://x/"]) | _json,
                  "iat": st.just(_now) | _json, "jti": st.text(max_size=20) | _json,
                  "ath": _json, "nonce": _json})


@fuzz_settings()
@given(header=_dpop_header | _json, claims=_dpop_claims | _json, sign=st.booleans())
def test_dpop_proofs_only_proof_error_or_accepted(header: Any, claims: Any, sign: bool) -> None:
    from wardgate.dpop.errors import ProofError

    head = _b64(json.dumps(header).encode()) + b"." + _b64(json.dumps(claims).encode())
    sig = KEY.sign(head, padding.PKCS1v15(), hashes.SHA256()) if sign else b"\x01" * 256
    try:
        DPOP.verify(head + b"." + _b64(sig), method="GET", uri="http://127.0.0.1/echo",
                    now=time.time())
    except ProofError:
        pass


def test_regression_object_kid_in_a_jwks_is_a_skipped_key_not_a_type_error() -> None:
    """Found by test_jwks_documents_only_import_or_key_import_error: an object `kid` made the
    duplicate check raise TypeError (unhashable), which the key fetcher does not catch."""
    good = public_jwk(KEY, "RS256", "k1")
    keys, problems = import_jwks({"keys": [{**good, "kid": {}}, {**good, "kid": {}}, good]},
                                 ["RS256"], 2048)
    assert [k.kid for k in keys] == ["k1"] and len(problems) == 2
