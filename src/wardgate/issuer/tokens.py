"""Minting and checking the issuer's own JWTs: RFC 9068 access tokens and OIDC ID tokens.

Claims are type-checked before signing: both JOSE libraries happily sign `exp: inf` or NaN,
which is not even valid JSON (jose-facts, notes for the issuer).
"""

from __future__ import annotations

import base64
import functools
import json
import math
import secrets
import time
import warnings
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry
from joserfc.registry import HeaderParameter

from wardgate.issuer.keyring import KeyRing
from wardgate.issuer.keys import PrivateKey

# We emit "EdDSA" on purpose (PyJWT and most verifiers know no "Ed25519" yet, jose-facts);
# joserfc warns on every use of that name, which under `-W error` would turn into a 500.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

ACCESS_TYP = "at+jwt"  # RFC 9068 §2.1
_INT_CLAIMS = ("exp", "iat", "nbf", "auth_time")
_STR_CLAIMS = ("iss", "sub", "jti", "client_id", "scope", "nonce", "sid", "azp")
MAX_TOKEN_BYTES = 8192


class ClaimTypeError(ValueError):
    pass


def check_claims(claims: Mapping[str, Any]) -> None:
    for name in _INT_CLAIMS:
        if name in claims:
            v = claims[name]
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                    or not 0 <= v < 2**53:
                raise ClaimTypeError(f"{name} must be a finite NumericDate")
    for name in _STR_CLAIMS:
        if name in claims and not isinstance(claims[name], str):
            raise ClaimTypeError(f"{name} must be a string")
    aud = claims.get("aud")
    if aud is not None and not (isinstance(aud, str) or (
            isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud))):
        raise ClaimTypeError("aud must be a string or a non-empty list of strings")
    roles = claims.get("roles")
    if roles is not None and not (isinstance(roles, list) and all(isinstance(r, str) for r in roles)):
        raise ClaimTypeError("roles must be a list of strings")
    if "act" in claims:
        act_chain(claims["act"])


def act_chain(act: Any, limit: int = 16) -> list[str]:
    """RFC 8693 §4.1: the actors of a delegation, current actor first; ClaimTypeError if the
    value is not a chain of objects each naming a string `sub`."""
    out: list[str] = []
    while act is not None:
        if not isinstance(act, dict) or not isinstance(act.get("sub"), str) or len(out) >= limit:
            raise ClaimTypeError("act must be nested objects with a string sub")
        out.append(act["sub"])
        act = act.get("act")
    return out


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@functools.lru_cache(maxsize=64)
def _header(alg: str, kid: str, typ: str) -> bytes:
    """The encoded protected header: the same for every token a key signs, so built once."""
    return _b64(json.dumps({"alg": alg, "kid": kid, "typ": typ}, separators=(",", ":")).encode())


def _signature(alg: str, key: PrivateKey, signing_input: bytes) -> bytes:
    priv: Any = key.private_key
    if alg == "ES256":
        # RFC 7518 §3.4: R || S, 32 bytes each, not the DER that cryptography returns.
        r, s = decode_dss_signature(priv.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "EdDSA":
        return bytes(priv.sign(signing_input))
    if alg == "RS256":
        return bytes(priv.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()))
    raise ValueError(f"unsupported algorithm {alg!r}")


def _sign(ring: KeyRing, header_typ: str, claims: dict[str, Any], now: int) -> str:
    """JWS compact serialization (RFC 7515 §7.1) with the key's own `cryptography` object.

    Only ES256, EdDSA and RS256 (`keys.generate`), whose encodings are fixed: joserfc's
    generic encoder (registry, header checks, key lookups) cost more than the signature.
    Tokens are verified with joserfc (`verify_access`) and, in tests, with PyJWT.
    """
    check_claims(claims)
    kid, alg, key = ring.signer(now)
    payload = json.dumps(claims, separators=(",", ":"), allow_nan=False).encode()
    signing_input = _header(alg, kid, header_typ) + b"." + _b64(payload)
    return (signing_input + b"." + _b64(_signature(alg, key, signing_input))).decode("ascii")


def new_jti() -> str:
    return secrets.token_urlsafe(16)


def mint_access(ring: KeyRing, *, issuer: str, sub: str, audience: str | list[str],
                client_id: str, scope: str, roles: list[str], ttl_s: int, now: int,
                sid: str | None = None, act: dict[str, Any] | None = None,
                jkt: str | None = None) -> tuple[str, dict[str, Any]]:
    claims: dict[str, Any] = {
        "iss": issuer, "sub": sub, "aud": audience, "exp": now + ttl_s, "iat": now,
        "nbf": now, "jti": new_jti(), "client_id": client_id, "scope": scope, "roles": roles,
    }
    if sid is not None:
        claims["sid"] = sid
    if act is not None:
        claims["act"] = act
    if jkt is not None:
        claims["cnf"] = {"jkt": jkt}  # RFC 9449 §6.1: bound to the proof's key
    return _sign(ring, ACCESS_TYP, claims, now), claims


def mint_id_token(ring: KeyRing, *, issuer: str, sub: str, client_id: str, ttl_s: int,
                  now: int, auth_time: int, sid: str, nonce: str | None,
                  extra: Mapping[str, Any]) -> str:
    # OIDC Core §2: aud is the client; nonce echoed only when the request carried one.
    claims: dict[str, Any] = {"iss": issuer, "sub": sub, "aud": client_id, "exp": now + ttl_s,
                              "iat": now, "auth_time": auth_time, "sid": sid,
                              "azp": client_id, **extra}
    if nonce is not None:
        claims["nonce"] = nonce
    return _sign(ring, "JWT", claims, now)


def _typ_ok(value: object) -> None:
    if not isinstance(value, str) or value.lower() not in (ACCESS_TYP, "application/at+jwt"):
        raise ValueError("typ must be at+jwt")


def verify_access(ring: KeyRing, token: str, *, issuer: str,
                  now: int | None = None) -> dict[str, Any] | None:
    """Verify one of our own access tokens; None when it is not valid (never raises)."""
    if not token or len(token) > MAX_TOKEN_BYTES:
        return None
    algs = ring.algorithms()
    if not algs:
        return None
    registry = JWSRegistry(algorithms=algs, header_registry={
        "typ": HeaderParameter("Type", _typ_ok, required=True)})  # type: ignore[arg-type]
    try:
        tok = jwt.decode(token, ring.verify_set, registry=registry)
        JWTClaimsRegistry(
            now=now if now is not None else int(time.time()), leeway=0,
            iss={"essential": True, "value": issuer}, exp={"essential": True},
            sub={"essential": True}, jti={"essential": True},
        ).validate(tok.claims)
    except (JoseError, ValueError, TypeError, RecursionError):
        return None
    return dict(tok.claims)
