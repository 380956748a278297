"""Published example vectors: RFC 7515 Appendix A and RFC 7520 §4 (JWS signatures).

RFC 7520's payload is prose, not a claims set, so those vectors exercise our key import and
one-algorithm registry (keys.py) at the signature step; RFC 7515 A.1 is a real JWT and goes
through the whole verifier.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from joserfc import jws
from joserfc.errors import BadSignatureError

from wardgate.auth.errors import Rejected
from wardgate.auth.keys import KeyRing, key_from_jwk, key_from_secret
from wardgate.auth.verifier import ProviderVerifier, TokenVerifier
from wardgate.config.auth import ProviderConfig

from .helpers import Clock

PAYLOAD = ("SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0"
           "ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5v"
           "IGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4")

# RFC 7520 §3.1 (EC P-521 public), §3.3 (RSA public), §3.5 (symmetric)
EC_7520 = {"kty": "EC", "kid": "bilbo.baggins@hobbiton.example", "use": "sig", "crv": "P-521",
           "x": "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt",
           "y": "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1"}
RSA_7520 = {"kty": "RSA", "kid": "bilbo.baggins@hobbiton.example", "use": "sig", "e": "AQAB",
            "n": "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQ"
                 "Hz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHq"
                 "FEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k"
                 "3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw"}
HMAC_7520 = "hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg"

VECTORS_7520 = {
    # §4.1 RSA v1.5
    "RS256": ("eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
              "MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83"
              "xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJ"
              "Dt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12"
              "podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg"),
    # §4.2 RSA-PSS
    "PS384": ("eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
              "cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN6-tPid6VrklHkqsGqDqHCdP6"
              "O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXUvdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqi"
              "VJRmBqrYRXe8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT0qI0n6uiP1aCN_2_"
              "jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw"),
    # §4.3 ECDSA P-521
    "ES512": ("eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
              "AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9Plon7KRTzoNEuT4Va2cmL1eJ"
              "AQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kvAD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2"),
    # §4.4 HMAC-SHA2
    "HS256": ("eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9",
              "s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0"),
}


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _key_7520(alg: str) -> Any:
    if alg == "HS256":
        return key_from_secret(_unb64(HMAC_7520), "HS256")
    jwk = dict(EC_7520 if alg == "ES512" else RSA_7520, alg=alg)
    return key_from_jwk(jwk, [alg])


@pytest.mark.parametrize("alg", sorted(VECTORS_7520))
def test_rfc7520_section4_vectors_verify(alg: str) -> None:
    header, sig = VECTORS_7520[alg]
    key = _key_7520(alg)
    assert key.alg == alg
    jws.deserialize_compact(f"{header}.{PAYLOAD}.{sig}", key.key, registry=key.registry)


@pytest.mark.parametrize("alg", sorted(VECTORS_7520))
def test_rfc7520_vectors_tampered_fail(alg: str) -> None:
    header, sig = VECTORS_7520[alg]
    key = _key_7520(alg)
    flipped = PAYLOAD[:10] + ("B" if PAYLOAD[10] != "B" else "C") + PAYLOAD[11:]
    with pytest.raises(BadSignatureError):
        jws.deserialize_compact(f"{header}.{flipped}.{sig}", key.key, registry=key.registry)


def test_rfc7520_vector_refused_by_other_algorithm_binding() -> None:
    header, sig = VECTORS_7520["PS384"]
    rs384 = key_from_jwk(dict(RSA_7520, alg="RS384"), ["RS384"])  # same key, other alg
    with pytest.raises(Exception):  # noqa: B017 - joserfc's UnsupportedAlgorithmError
        jws.deserialize_compact(f"{header}.{PAYLOAD}.{sig}", rs384.key, registry=rs384.registry)


# RFC 7515 Appendix A.1: HS256 JWT {"iss":"joe","exp":1300819380,"http://example.com/is_root":true}
A1_KEY = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
A1 = ("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
      ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
      ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
# RFC 7515 Appendix A.5: the same claims, unsecured (alg "none")
A5 = ("eyJhbGciOiJub25lIn0"
      ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
      ".")


def _joe_verifier(monkeypatch: pytest.MonkeyPatch, **over: Any) -> TokenVerifier:
    monkeypatch.setenv("WG_A1", "placeholder-not-used-the-ring-is-filled-below")
    cfg = ProviderConfig.model_validate(dict({
        "name": "joe", "issuer": "joe", "audiences": ["api"], "algorithms": ["HS256"],
        "secret_env": "WG_A1", "required_claims": [], "max_lifetime_s": None}, **over))
    ring = KeyRing()
    ring.replace([key_from_secret(_unb64(A1_KEY), "HS256")])
    return TokenVerifier([ProviderVerifier(cfg, ring, Clock(1300819000))], 8192)


def test_rfc7515_a1_signature_verifies_then_claims_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = _joe_verifier(monkeypatch)
    with pytest.raises(Rejected) as info:
        verifier.verify(A1.encode())
    # the signature and exp passed; the example simply has no aud, which we require
    assert info.value.reason == "missing_claim"
    tampered = A1[:-2] + ("A" if A1[-2] != "A" else "B") + A1[-1]
    with pytest.raises(Rejected) as info:
        verifier.verify(tampered.encode())
    assert info.value.reason == "bad_signature"


def test_rfc7515_a5_unsecured_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(Rejected) as info:
        _joe_verifier(monkeypatch).verify(A5.encode())
    assert info.value.reason == "alg_none"
