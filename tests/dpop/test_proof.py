"""ProofVerifier (sans-I/O): a good proof passes; each RFC 9449 §4.3 check fails its own case."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.dpop import DROP, DpopKey, ath, b64, jwk_thumbprint
from wardgate.dpop.errors import NonceRequired, ProofError
from wardgate.dpop.nonce import NonceSource
from wardgate.dpop.proof import ProofVerifier
from wardgate.dpop.thumb import thumbprint

NOW = 1_800_000_000.0
URL = "https://api.example/orders/1"
TOKEN = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"


@pytest.fixture(scope="module")
def key() -> DpopKey:
    return DpopKey("ES256")


def verifier(**kw: Any) -> ProofVerifier:
    opts: dict[str, Any] = {"max_age_s": 60, "max_future_s": 5}
    opts.update(kw)
    return ProofVerifier(["ES256", "EdDSA", "RS256", "PS256"], **opts)


def check(proof: str, key: DpopKey, *, v: ProofVerifier | None = None, method: str = "GET",
          uri: str = URL, token: bytes | None = TOKEN, jkt: str | None = None) -> Any:
    return (v or verifier()).verify(proof.encode(), method=method, uri=uri, now=NOW,
                                    access_token=token, jkt=jkt or key.jkt)


def reason(proof: str, key: DpopKey, **kw: Any) -> str:
    with pytest.raises(ProofError) as exc:
        check(proof, key, **kw)
    return exc.value.reason


def good(key: DpopKey, **kw: Any) -> str:
    return key.proof("GET", URL, token=TOKEN, iat=NOW, **kw)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256", "PS256"])
def test_valid_proof_passes(alg: str) -> None:
    k = DpopKey(alg)
    p = check(good(k), k)
    assert p.jkt == k.jkt and p.iat == NOW and not p.stale_nonce


def test_thumbprint_matches_rfc7638_example() -> None:
    # RFC 7638 §3.1
    jwk = {"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
           "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6"
                "tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v"
                "-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08"
                "qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8a"
                "wapJzKnqDKgw"}
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert jwk_thumbprint(jwk) == thumbprint(jwk)


def test_wrong_typ(key: DpopKey) -> None:
    for typ in ("JWT", "at+jwt", DROP, 7):
        assert reason(good(key, header={"typ": typ}), key) == "bad_typ"
    check(good(key, header={"typ": "application/DPoP+JWT"}), key)  # RFC 7515 §4.1.9


def test_hs256_and_none_refused(key: DpopKey) -> None:
    h = {"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"s" * 32)}}
    c = {"jti": "a", "htm": "GET", "htu": URL, "iat": NOW, "ath": ath(TOKEN)}
    hs = key.sign(h, c, alg="HS256", key=b"s" * 32)
    assert reason(hs, key) == "bad_alg"
    body = b64(json.dumps(c).encode())
    for alg in ("none", "None"):
        head = b64(json.dumps({"typ": "dpop+jwt", "alg": alg, "jwk": key.jwk}).encode())
        assert reason(f"{head}.{body}.", key) == "bad_alg"
    with pytest.raises(ValueError):
        ProofVerifier(["HS256"], max_age_s=60, max_future_s=5)


def test_alg_outside_allow_list(key: DpopKey) -> None:
    v = ProofVerifier(["EdDSA"], max_age_s=60, max_future_s=5)
    assert reason(good(key), key, v=v) == "bad_alg"


def test_private_key_in_jwk(key: DpopKey) -> None:
    assert reason(good(key, header={"jwk": key.private_jwk}), key) == "private_key"


def test_missing_or_bad_jwk(key: DpopKey) -> None:
    assert reason(good(key, header={"jwk": DROP}), key) == "missing_jwk"
    other = DpopKey("EdDSA")
    assert reason(good(key, header={"jwk": other.jwk}), key) == "bad_jwk"  # key does not fit alg
    assert reason(good(key, header={"jku": "https://x.example/jwks"}), key) == "bad_header"


def test_bad_signature(key: DpopKey) -> None:
    p = good(key)
    head, body, sig = p.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    assert reason(".".join((head, body, flipped)), key) == "bad_signature"
    # the header names one key, another signed
    forged = DpopKey("ES256")
    mixed = forged.sign({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk},
                        {"jti": "x", "htm": "GET", "htu": URL, "iat": NOW, "ath": ath(TOKEN)})
    assert reason(mixed, key) == "bad_signature"


def test_wrong_htm(key: DpopKey) -> None:
    assert reason(good(key), key, method="POST") == "bad_htm"
    assert reason(good(key, claims={"htm": "get"}), key) == "bad_htm"


@pytest.mark.parametrize("htu", ["https://other.example/orders/1", "https://api.example/orders/2",
                                 "https://api.example/orders/1?x=1", "https://api.example/orders/1#f",
                                 "http://api.example/orders/1", "https://api.example:8443/orders/1",
                                 "https://user@api.example/orders/1", "/orders/1", ""])
def test_wrong_htu(key: DpopKey, htu: str) -> None:
    assert reason(good(key, claims={"htu": htu}), key) == "bad_htu"


@pytest.mark.parametrize("htu", ["HTTPS://API.EXAMPLE/orders/1", "https://api.example:443/orders/1",
                                 "https://api.example/orders/./1", "https://api.example/x/../orders/1",
                                 "https://api.example/%6Frders/1"])
def test_htu_normalised(key: DpopKey, htu: str) -> None:
    check(good(key, claims={"htu": htu}), key)  # RFC 9449 §4.3: RFC 3986 §6.2.2 and §6.2.3


def test_iat_window(key: DpopKey) -> None:
    assert reason(key.proof("GET", URL, token=TOKEN, iat=NOW - 61), key) == "iat_too_old"
    assert reason(key.proof("GET", URL, token=TOKEN, iat=NOW + 6), key) == "iat_in_future"
    check(key.proof("GET", URL, token=TOKEN, iat=NOW - 59), key)
    check(key.proof("GET", URL, token=TOKEN, iat=NOW + 4), key)
    for bad in ("1800000000", None, True):
        assert reason(good(key, claims={"iat": bad}), key) == "bad_iat"


def test_wrong_or_missing_ath(key: DpopKey) -> None:
    assert reason(good(key, claims={"ath": ath(b"another.token.value")}), key) == "bad_ath"
    assert reason(good(key, claims={"ath": DROP}), key) == "missing_ath"


def test_another_keys_proof(key: DpopKey) -> None:
    other = DpopKey("ES256")
    assert reason(good(other), key) == "key_mismatch"  # cnf.jkt names `key`


def test_jti_required(key: DpopKey) -> None:
    assert reason(good(key, claims={"jti": DROP}), key) == "bad_jti"
    assert reason(good(key, claims={"jti": ""}), key) == "bad_jti"


def test_malformed_and_oversize(key: DpopKey) -> None:
    assert reason("not-a-jws", key) == "malformed"
    assert reason(good(key) + "." + "x", key) == "malformed"
    assert reason(good(key, claims={"pad": "x" * 5000}), key) == "oversize"
    # duplicate members are refused (last-wins would let a proof say two things)
    c = '{"jti":"a","htm":"GET","htm":"POST","htu":"' + URL + '","iat":' + str(int(NOW)) + "}"
    head = b64(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk}).encode())
    assert reason(f"{head}.{b64(c.encode())}.AAAA", key) == "malformed"


def test_nonce_required_then_accepted(key: DpopKey) -> None:
    nonces = NonceSource(b"k" * 32, 300)
    v = verifier(nonces=nonces)
    with pytest.raises(NonceRequired) as exc:
        check(good(key), key, v=v)
    assert exc.value.reason == "nonce_required"
    fresh = exc.value.nonce
    assert check(good(key, nonce=fresh), key, v=v).stale_nonce is False
    with pytest.raises(NonceRequired) as bad:
        check(good(key, nonce="x" * 32), key, v=v)
    assert bad.value.reason == "bad_nonce" and bad.value.nonce == fresh


def test_nonce_steps() -> None:
    n = NonceSource(b"k" * 32, 100)
    a = n.current(1000.0)
    assert n.check(a, 1050.0) == 2
    assert n.check(a, 1150.0) == 1      # last step's: still good, a new one is due
    assert n.check(a, 1250.0) == 0      # expired
    assert NonceSource(b"j" * 32, 100).check(a, 1000.0) == 0  # another key's
    assert n.check(a[:-1] + ("A" if a[-1] != "A" else "B"), 1000.0) == 0


def test_header_memo_does_not_mix_keys() -> None:
    v = verifier()
    a, b = DpopKey("ES256"), DpopKey("ES256")
    check(good(a), a, v=v)
    assert reason(good(b), a, v=v) == "key_mismatch"
    check(good(b), b, v=v)


def test_ath_memo_keeps_tokens_apart(key: DpopKey) -> None:
    """The remembered `ath` is per exact token: one verifier, many tokens (more than the
    memo holds), each proof good for its own token only."""
    v = verifier()
    tokens = [TOKEN + b"x" * i for i in range(1100)]
    for tok in (tokens[0], *tokens, tokens[0]):
        assert check(good(key, claims={"ath": ath(tok)}), key, v=v, token=tok).jkt == key.jkt
    with pytest.raises(ProofError, match="bad_ath"):
        check(good(key, claims={"ath": ath(tokens[1])}), key, v=v, token=tokens[2])
    with pytest.raises(ProofError, match="bad_ath"):  # a remembered token's proof elsewhere
        check(good(key, claims={"ath": ath(tokens[-1])}), key, v=v, token=tokens[0])
