"""One named regression test per attack class (docs/auth.md, "Security model", maps each one).

Every test asserts the *reason* a token is refused, so a defence that silently moved to a
different layer (or vanished, leaving some later check to fail by luck) shows up here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from wardgate.auth.errors import Rejected
from wardgate.errors import InvalidToken

from .helpers import (
    DROP,
    ISS,
    NOW,
    Env,
    b64,
    claims,
    enc,
    make_env,
    provider_config,
    public_jwk,
    request,
    sign,
)
from .jwks_server import JwksServer

AT = {"alg": "RS256", "kid": "rsa1", "typ": "at+jwt"}


def reason(env: Env, token: bytes) -> str:
    with pytest.raises(Rejected) as info:
        env.verify(token)
    return info.value.reason


def hs(header: dict[str, Any], payload: dict[str, Any], secret: bytes, digest: Any) -> bytes:
    signing_input = b64(json.dumps(header).encode()) + b"." + b64(json.dumps(payload).encode())
    return signing_input + b"." + b64(hmac.new(secret, signing_input, digest).digest())


def test_valid_token_is_accepted(env: Env, rsa_key: Any) -> None:
    ident = env.verify(sign(AT, claims(), rsa_key))
    assert ident.provider == "main" and ident.sub == "alice"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("sig", [b"", b"AAAA"])
def test_attack_alg_none_any_case(env: Env, alg: str, sig: bytes) -> None:
    hdr = {"alg": alg, "kid": "rsa1", "typ": "at+jwt"}
    token = b64(json.dumps(hdr).encode()) + b"." + b64(json.dumps(claims()).encode()) + b"." + sig
    assert reason(env, token) == "alg_none"


def _rsa_public_forms(key: rsa.RSAPrivateKey) -> dict[str, bytes]:
    pub = key.public_key()
    pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pkcs1 = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    jwk = json.dumps(public_jwk(key, "RS256", "rsa1")).encode()
    return {"pem": pem, "pem_no_newline": pem.rstrip(b"\n"), "der": der, "pkcs1": pkcs1, "jwk": jwk}


@pytest.mark.parametrize("form", ["pem", "pem_no_newline", "der", "pkcs1", "jwk"])
@pytest.mark.parametrize("alg,digest", [("HS256", hashlib.sha256), ("HS512", hashlib.sha512)])
def test_attack_hmac_keyed_with_rsa_public_key(env: Env, rsa_key: Any, form: str, alg: str,
                                               digest: Any) -> None:
    secret = _rsa_public_forms(rsa_key)[form]
    token = hs({"alg": alg, "kid": "rsa1", "typ": "at+jwt"}, claims(), secret, digest)
    assert reason(env, token) == "alg_not_allowed"


async def test_attack_alg_swapped_within_family_is_bound_to_key(tmp_path: Path, rsa_key: Any) -> None:
    # PS256 and RS256 both allowed, but the key is published for RS256: the key decides
    env = await make_env([provider_config(tmp_path, {"keys": [public_jwk(rsa_key, "RS256", "rsa1")]},
                                          algorithms=["RS256", "PS256"])])
    token = sign({"alg": "PS256", "kid": "rsa1", "typ": "at+jwt"}, claims(), rsa_key)
    assert reason(env, token) == "alg_key_mismatch"


@pytest.mark.parametrize("raw", [b"\x00" * 64, b"\xff" * 64, b"\x00" * 31 + b"\x01" + b"\x00" * 32])
def test_attack_ecdsa_zero_and_degenerate_signatures(env: Env, raw: bytes) -> None:
    hdr = {"alg": "ES256", "kid": "ec1", "typ": "at+jwt"}
    token = b64(json.dumps(hdr).encode()) + b"." + b64(json.dumps(claims()).encode()) + b"." + b64(raw)
    assert reason(env, token) == "bad_signature"


def test_attack_ecdsa_n_equal_signature(env: Env) -> None:
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    raw = n.to_bytes(32, "big") * 2
    hdr = {"alg": "ES256", "kid": "ec1", "typ": "at+jwt"}
    token = b64(json.dumps(hdr).encode()) + b"." + b64(json.dumps(claims()).encode()) + b"." + b64(raw)
    assert reason(env, token) == "bad_signature"


def test_attack_embedded_jwk(env: Env, rsa_other: Any) -> None:
    hdr = dict(AT, jwk=public_jwk(rsa_other, "RS256", "rsa1"))
    assert reason(env, sign(hdr, claims(), rsa_other)) == "embedded_key"


@pytest.mark.parametrize("param", ["jku", "x5u"])
async def test_attack_jku_x5u_never_contacted(env: Env, rsa_other: Any, param: str) -> None:
    server = JwksServer()
    server.docs["/evil.json"] = {"keys": [public_jwk(rsa_other, "RS256", "evil")]}
    await server.start()
    try:
        url = server.base + "/evil.json"
        for kid in ("evil", "rsa1"):
            token = sign({"alg": "RS256", "kid": kid, "typ": "at+jwt", param: url}, claims(), rsa_other)
            assert reason(env, token) == "embedded_key"
            route = env.route({"providers": ["main"]})
            with pytest.raises(InvalidToken):
                await route.authenticate(request(token=token))
        x5c = sign(dict(AT, x5c=["MIIB"]), claims(), rsa_other)
        assert reason(env, x5c) == "embedded_key"
        assert server.total_hits() == 0
    finally:
        await server.stop()


@pytest.mark.parametrize("kid", ["../../../../../dev/null", "/etc/passwd", "rsa1/../rsa1",
                                 "' OR '1'='1", "rsa1\x00", "rsa1 ", "RSA1", "", "http://127.0.0.1/k",
                                 "$(id)", "*"])
def test_attack_kid_traversal_and_injection(env: Env, rsa_other: Any, kid: str) -> None:
    token = sign({"alg": "RS256", "kid": kid, "typ": "at+jwt"}, claims(), rsa_other)
    assert reason(env, token) == "unknown_kid"


@pytest.mark.parametrize("kid", [1, ["rsa1"], {"k": "rsa1"}, True])
def test_attack_kid_not_a_string(env: Env, rsa_key: Any, kid: Any) -> None:
    assert reason(env, sign(dict(AT, kid=kid), claims(), rsa_key)) == "malformed"


def test_attack_signature_stripped(env: Env, rsa_key: Any) -> None:
    token = sign(AT, claims(), rsa_key)
    head, body, _ = token.split(b".")
    assert reason(env, head + b"." + body + b".") == "bad_signature"
    assert reason(env, head + b"." + body) == "malformed"


def test_attack_signature_truncated(env: Env, rsa_key: Any) -> None:
    token = sign(AT, claims(), rsa_key)
    head, body, sig = token.split(b".")
    raw = base64.urlsafe_b64decode(sig + b"==")
    assert reason(env, head + b"." + body + b"." + b64(raw[:-1])) == "bad_signature"
    assert reason(env, head + b"." + body + b"." + b64(raw[:16])) == "bad_signature"


@pytest.mark.parametrize("segment", [0, 1, 2])
def test_attack_bit_flipped(env: Env, rsa_key: Any, segment: int) -> None:
    parts = sign(AT, claims(sub="alicf"), rsa_key).split(b".")
    raw = bytearray(base64.urlsafe_b64decode(parts[segment] + b"=="))
    # flip one bit in the value (for JSON segments: inside the "alicf" string keeps it valid)
    pos = raw.find(b"alicf") + 4 if segment == 1 else len(raw) // 2
    raw[pos] ^= 0x01
    parts[segment] = b64(bytes(raw))
    assert reason(env, b".".join(parts)) in {"bad_signature", "malformed"}
    if segment != 0:
        assert reason(env, b".".join(parts)) == "bad_signature"


def test_attack_borrowed_signature(env: Env, rsa_key: Any) -> None:
    a = sign(AT, claims(sub="alice"), rsa_key).split(b".")
    b = sign(AT, claims(sub="admin", scope="admin"), rsa_key).split(b".")
    assert reason(env, b[0] + b"." + b[1] + b"." + a[2]) == "bad_signature"


def test_attack_signature_from_other_key_same_kid(env: Env, rsa_other: Any) -> None:
    assert reason(env, sign(AT, claims(), rsa_other)) == "bad_signature"


@pytest.mark.parametrize("exp,expected", [
    (int(NOW) - 31, "expired"),          # beyond the 30 s leeway
    (DROP, "missing_claim"),
    (None, "missing_claim"),
    (str(int(NOW) + 300), "bad_exp"),
    (True, "bad_exp"),
    (1e30, "lifetime"),
    (10**30, "lifetime"),
    (int(NOW) + 86400 * 2, "lifetime"),  # beyond max_lifetime_s (24 h)
    (NOW - 40.5, "expired"),
])
def test_attack_exp_variants(env: Env, rsa_key: Any, exp: Any, expected: str) -> None:
    assert reason(env, sign(AT, claims(exp=exp), rsa_key)) == expected


def test_exp_float_and_within_leeway_accepted(env: Env, rsa_key: Any) -> None:
    env.verify(sign(AT, claims(exp=NOW + 600.5), rsa_key))
    env.verify(sign(AT, claims(exp=int(NOW) - 10), rsa_key))  # inside the leeway


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_attack_exp_not_finite(env: Env, rsa_key: Any, literal: bytes) -> None:
    body = enc(claims(exp=0)).replace(b'"exp":0', b'"exp":' + literal)
    assert body != enc(claims(exp=0))
    assert reason(env, sign(AT, body, rsa_key)) in {"malformed", "bad_exp"}


@pytest.mark.parametrize("claim,expected", [("nbf", "not_yet_valid"), ("iat", "bad_iat")])
def test_attack_future_nbf_iat(env: Env, rsa_key: Any, claim: str, expected: str) -> None:
    assert reason(env, sign(AT, claims(**{claim: int(NOW) + 120}), rsa_key)) == expected
    env.verify(sign(AT, claims(**{claim: int(NOW) + 10}), rsa_key))  # clock skew within leeway


@pytest.mark.parametrize("iss,expected", [
    ("https://issuer.example/", "unknown_issuer"),
    ("https://issuer.example.evil", "unknown_issuer"),
    ("https://issuer", "unknown_issuer"),
    ("HTTPS://ISSUER.EXAMPLE", "unknown_issuer"),
    (DROP, "bad_iss"),
    (None, "bad_iss"),
    ([ISS], "bad_iss"),
])
def test_attack_wrong_or_missing_iss(env: Env, rsa_key: Any, iss: Any, expected: str) -> None:
    assert reason(env, sign(AT, claims(iss=iss), rsa_key)) == expected


@pytest.mark.parametrize("aud,expected", [
    ("other", "bad_aud"), ("ap", "bad_aud"), ("api2", "bad_aud"), ("API", "bad_aud"),
    (" api", "bad_aud"), (["ap", "i"], "bad_aud"), (["other"], "bad_aud"), ([], "bad_aud"),
    ([1, "x"], "bad_aud"), (DROP, "missing_claim"), (None, "missing_claim"),
])
def test_attack_aud_tricks(env: Env, rsa_key: Any, aud: Any, expected: str) -> None:
    assert reason(env, sign(AT, claims(aud=aud), rsa_key)) == expected


@pytest.mark.parametrize("aud", ["api", ["other", "api"], ["api"]])
def test_aud_string_or_array_accepted(env: Env, rsa_key: Any, aud: Any) -> None:
    env.verify(sign(AT, claims(aud=aud), rsa_key))


def test_attack_duplicate_claims(env: Env, rsa_key: Any) -> None:
    body = enc(claims(sub="alice"))[:-1] + b',"sub":"admin"}'
    assert reason(env, sign(AT, body, rsa_key)) == "duplicate_key"
    hdr = b'{"alg":"none","kid":"rsa1","typ":"at+jwt","alg":"RS256"}'
    assert reason(env, sign(hdr, claims(), rsa_key, alg="RS256")) == "duplicate_key"
    nested = enc(claims(realm_access={"roles": ["a"]}))
    nested = nested.replace(b'{"roles":["a"]}', b'{"roles":["a"],"roles":["admin"]}')
    assert reason(env, sign(AT, nested, rsa_key)) == "duplicate_key"


@pytest.mark.parametrize("crit", [["exp"], [], ["kid"], ["b64"], "exp"])
def test_attack_unknown_or_bogus_crit(env: Env, rsa_key: Any, crit: Any) -> None:
    assert reason(env, sign(dict(AT, crit=crit, exp=1), claims(), rsa_key)) == "crit"


def test_attack_b64_false(env: Env, rsa_key: Any) -> None:
    # RFC 7797 unencoded payload: raw JSON in the middle segment
    raw = json.dumps(claims()).encode()
    hdr = b64(json.dumps(dict(AT, b64=False, crit=["b64"])).encode())
    from jwt.algorithms import get_default_algorithms

    algo = get_default_algorithms()["RS256"]
    sig = algo.sign(hdr + b"." + raw, rsa_key)
    assert reason(env, hdr + b"." + raw + b"." + b64(sig)) == "malformed"
    # and as a header parameter alone, it is refused by name
    assert reason(env, sign(dict(AT, b64=False), claims(), rsa_key)) == "b64"
    assert reason(env, sign(dict(AT, b64=False, crit=["b64"]), claims(), rsa_key)) == "crit"


async def test_attack_typ_confusion(tmp_path: Path, rsa_key: Any) -> None:
    jwks = {"keys": [public_jwk(rsa_key, "RS256", "rsa1")]}
    strict = await make_env([provider_config(tmp_path, jwks, typ=["at+jwt"])])
    id_token = sign(dict(AT, typ="JWT"), claims(), rsa_key)
    assert reason(strict, id_token) == "bad_typ"
    for ok in ("at+jwt", "AT+JWT", "application/at+jwt"):
        strict.verify(sign(dict(AT, typ=ok), claims(), rsa_key))
    assert reason(strict, sign({"alg": "RS256", "kid": "rsa1"}, claims(), rsa_key)) == "bad_typ"
    default = await make_env([provider_config(tmp_path, jwks)])
    default.verify(id_token)
    for typ in ("dpop+jwt", "application/dpop+jwt", "DPoP+JWT"):
        assert reason(default, sign(dict(AT, typ=typ), claims(), rsa_key)) == "bad_typ"
    assert reason(default, sign(dict(AT, typ="secevent+jwt"), claims(), rsa_key)) == "bad_typ"
    assert reason(default, sign(dict(AT, typ=["at+jwt"]), claims(), rsa_key)) == "malformed"


def test_config_refuses_dpop_typ(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="dpop"):
        provider_config(tmp_path, {"keys": []}, typ=["at+jwt", "dpop+jwt"])


def _recode(token: bytes, index: int, fn: Any) -> bytes:
    parts = token.split(b".")
    parts[index] = fn(parts[index])
    return b".".join(parts)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_attack_non_canonical_base64url(env: Env, rsa_key: Any, index: int) -> None:
    token = sign(AT, claims(sub="al"), rsa_key)
    seg = token.split(b".")[index]
    variants = [
        lambda s: s + b"=" * (-len(s) % 4 or 4),               # padding
        lambda s: s.replace(b"-", b"+").replace(b"_", b"/") + (b"" if b"-" in s or b"_" in s else b"+"),
        lambda s: b" " + s,                                     # leading whitespace
        lambda s: s[:4] + b"\n" + s[4:],                        # newline inside
        lambda s: s + b"\t",
        lambda s: s[:-1] + b"%",
    ]
    if len(seg) % 4 in (2, 3):
        # same decoded bytes, non-zero unused bits in the last character (RFC 4648 §3.5)
        alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        last = alphabet.index(seg[-1:])
        variants.append(lambda s: s[:-1] + alphabet[last + 1:last + 2])
    for fn in variants:
        assert reason(env, _recode(token, index, fn)) == "malformed", fn(seg)


def test_attack_jwe_shaped_tokens(env: Env, rsa_key: Any) -> None:
    jwe_hdr = b64(b'{"alg":"RSA-OAEP","enc":"A256GCM","kid":"rsa1"}')
    assert reason(env, jwe_hdr + b".AAAA.AAAA.AAAA.AAAA") == "jwe"
    assert reason(env, b"a.b.c.d") == "malformed"
    nested = sign(dict(AT, cty="JWT"), b'"' + sign(AT, claims(), rsa_key) + b'"', rsa_key)
    assert reason(env, nested) == "malformed"  # a nested JWT payload is a string, not claims
    assert reason(env, sign(dict(AT, cty="JWT"), claims(), rsa_key)) == "nested"


def test_attack_oversize_token_rejected_before_decoding(env: Env, rsa_key: Any) -> None:
    token = sign(AT, claims(pad="x" * 9000), rsa_key)
    assert reason(env, token) == "oversize"
    huge = b"A" * (4 * 1024 * 1024)
    token = huge + b"." + huge + b"." + huge
    start = time.perf_counter()
    try:
        env.verify(token)
    except Rejected as exc:
        elapsed = time.perf_counter() - start
        assert exc.reason == "oversize"
    assert elapsed < 0.01  # the cap is a length check: no decoder saw 12 MiB


def test_attack_deeply_nested_json(env: Env, rsa_key: Any) -> None:
    deep = b'{"iss":"' + ISS.encode() + b'","x":' + b"[" * 2000 + b"]" * 2000 + b"}"
    assert reason(env, sign(AT, deep, rsa_key)) == "too_deep"
    deep_hdr = b'{"alg":"RS256","x":' + b"[" * 2000 + b"]" * 2000 + b"}"
    assert reason(env, sign(deep_hdr, claims(), rsa_key, alg="RS256")) == "too_deep"


@pytest.mark.parametrize("payload", [b"[]", b'"x"', b"null", b"1", b"", b"\xef\xbb\xbf{}",
                                     '{"iss":"x"}'.encode("utf-16")])
def test_attack_payload_not_a_utf8_json_object(env: Env, rsa_key: Any, payload: bytes) -> None:
    assert reason(env, sign(AT, payload, rsa_key)) == "malformed"


@pytest.mark.parametrize("header", [b'"alg"', b'["alg"]', b"[]", b"null", b"{"])
def test_attack_header_not_an_object(env: Env, rsa_key: Any, header: bytes) -> None:
    assert reason(env, sign(header, claims(), rsa_key, alg="RS256")) == "malformed"


async def test_attack_ecdsa_malleable_spelling_revoked_by_jti(env: Env, ec_key: Any) -> None:
    """(r, n-s) is a second valid spelling of one ES256 token (jose-facts §9): the cache holds
    both strings, so revocation must match the jti, which both share."""
    n = ec.SECP256R1().key_size and 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    token = sign({"alg": "ES256", "kid": "ec1", "typ": "at+jwt"}, claims(jti="j-1"), ec_key)
    head, body, sig = token.split(b".")
    raw = base64.urlsafe_b64decode(sig + b"==")
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    assert decode_dss_signature(encode_dss_signature(r, s)) == (r, s)
    twin = head + b"." + body + b"." + b64(r.to_bytes(32, "big") + (n - s).to_bytes(32, "big"))
    route = env.route({"providers": ["main"]})
    for t in (token, twin):
        await route.authenticate(request(token=t))
    env.registry.set_revocation_check(lambda ident: ident.jti == "j-1")
    for t in (token, twin):
        req = request(token=t)
        with pytest.raises(InvalidToken):
            await route.authenticate(req)
        assert req.auth_outcome == "revoked"
