"""Client authentication at the token, revocation and introspection endpoints.

RFC 6749 §2.3.1 (client_secret_basic / client_secret_post), RFC 7523 §2.2 + OIDC Core §9
(private_key_jwt), and public clients that only name themselves (§2.1; PKCE protects them).
Exactly one method per request (§2.3). Every failure is `invalid_client`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import unquote_plus

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from wardgate.issuer import clients
from wardgate.issuer.errors import InvalidClient, InvalidRequest
from wardgate.issuer.schema import used_assertions

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ["RS256", "ES256", "EdDSA"]
MAX_ASSERTION_LIFETIME_S = 300
MAX_ASSERTION_BYTES = 8192


def _basic(header: str | None) -> tuple[str, str] | None:
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("malformed Basic credentials") from None
    cid, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("malformed Basic credentials")
    # §2.3.1: both parts are form-urlencoded before base64.
    return unquote_plus(cid), unquote_plus(secret)


async def authenticate(conn: AsyncConnection, params: dict[str, str], authorization: str | None,
                       *, audiences: list[str], now: int,
                       allow_public: bool = True) -> clients.Client:
    basic = _basic(authorization)
    has_post = "client_secret" in params
    has_jwt = "client_assertion" in params or "client_assertion_type" in params
    if sum((basic is not None, has_post, has_jwt)) > 1:
        raise InvalidRequest("use exactly one client authentication method")
    if basic is not None:
        cid, secret = basic
        if params.get("client_id") not in (None, cid):
            raise InvalidRequest("client_id does not match the credentials")
        return await _by_secret(conn, cid, secret)
    if has_post:
        return await _by_secret(conn, params.get("client_id", ""), params["client_secret"])
    if has_jwt:
        return await _by_assertion(conn, params, audiences, now)
    public_id = params.get("client_id")
    if not public_id:
        raise InvalidClient("client authentication required")
    client = await clients.get_client(conn, public_id) if len(public_id) <= 100 else None
    if client is None or client.disabled or not client.public or not allow_public:
        raise InvalidClient("client authentication failed")
    return client


async def _by_secret(conn: AsyncConnection, cid: str, secret: str) -> clients.Client:
    client = await clients.get_client(conn, cid) if cid and len(cid) <= 100 else None
    if (client is None or client.disabled or not client.auth_method.startswith("client_secret")
            or not client.secret_matches(secret)):
        raise InvalidClient("client authentication failed")
    return client


def _claims_registry(cid: str, audiences: list[str], now: int) -> JWTClaimsRegistry:
    return JWTClaimsRegistry(
        now=now, leeway=30,
        iss={"essential": True, "value": cid}, sub={"essential": True, "value": cid},
        aud={"essential": True, "values": audiences}, exp={"essential": True},
        jti={"essential": True})


async def _by_assertion(conn: AsyncConnection, params: dict[str, str], audiences: list[str],
                        now: int) -> clients.Client:
    if params.get("client_assertion_type") != ASSERTION_TYPE:
        raise InvalidClient("unsupported client_assertion_type")
    assertion = params.get("client_assertion", "")
    if not assertion or len(assertion) > MAX_ASSERTION_BYTES:
        raise InvalidClient("bad client_assertion")
    # The client is named by client_id or the unverified `sub`; the signature check decides.
    cid = params.get("client_id") or _unverified_sub(assertion)
    client = await clients.get_client(conn, cid) if cid and len(cid) <= 100 else None
    if client is None or client.disabled or client.auth_method != "private_key_jwt" \
            or not client.jwks:
        raise InvalidClient("client authentication failed")
    try:
        keyset = KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
        tok = jwt.decode(assertion, keyset, registry=JWSRegistry(algorithms=ASSERTION_ALGS))
        claims: dict[str, Any] = dict(tok.claims)
        _claims_registry(cid, audiences, now).validate(claims)
    except (JoseError, ValueError, TypeError, RecursionError):
        raise InvalidClient("client assertion rejected") from None
    exp = claims["exp"]
    if not isinstance(exp, int | float) or exp - now > MAX_ASSERTION_LIFETIME_S:
        raise InvalidClient("client assertion lifetime too long")
    # RFC 7523 §3 item 7: a jti may be used once; keep it until the assertion expires.
    await conn.execute(delete(used_assertions).where(used_assertions.c.expires_at < now))
    jti = str(claims["jti"])[:255]
    seen = (await conn.execute(select(used_assertions.c.jti).where(
        used_assertions.c.client_id == cid, used_assertions.c.jti == jti))).first()
    if seen is not None:
        raise InvalidClient("client assertion replayed")
    try:
        # A concurrent replay loses on the primary key; the raise rolls its transaction back.
        await conn.execute(insert(used_assertions).values(
            client_id=cid, jti=jti, expires_at=int(exp)))
    except IntegrityError:
        raise InvalidClient("client assertion replayed") from None
    return client


def _unverified_sub(assertion: str) -> str:
    parts = assertion.split(".")
    if len(parts) != 3:
        return ""
    try:
        seg = parts[1] + "=" * (-len(parts[1]) % 4)
        payload = json.loads(base64.urlsafe_b64decode(seg))
    except (ValueError, binascii.Error, RecursionError):
        return ""
    sub = payload.get("sub") if isinstance(payload, dict) else None
    return sub if isinstance(sub, str) else ""
