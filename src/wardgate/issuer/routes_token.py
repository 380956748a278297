"""The token endpoint (RFC 6749 §3.2), revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from wardgate.issuer import (
    audit,
    clientauth,
    clients,
    exchange,
    forms,
    grants,
    refresh,
    revocations,
    sessions,
    tokens,
)
from wardgate.issuer.deps import address, issuer_of, no_store
from wardgate.issuer.errors import UnsupportedGrantType
from wardgate.issuer.service import Issuer

router = APIRouter(tags=["oauth"])


def _form_body(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {
        "application/x-www-form-urlencoded": {"schema": {
            "type": "object", "required": required,
            "properties": {k: {"type": "string"} for k in props} | props}}}}}


_CLIENT = {"client_id": {"type": "string"}, "client_secret": {"type": "string"},
           "client_assertion_type": {"type": "string"}, "client_assertion": {"type": "string"}}
_TOKEN = _form_body({
    "grant_type": {"type": "string",
                   "enum": ["refresh_token", "client_credentials", "authorization_code",
                            exchange.GRANT_TYPE]},
    "refresh_token": {"type": "string"}, "scope": {"type": "string"},
    "code": {"type": "string"}, "redirect_uri": {"type": "string"},
    "code_verifier": {"type": "string"}, "audience": {"type": "string"},
    "resource": {"type": "string"}, "subject_token": {"type": "string"},
    "subject_token_type": {"type": "string"}, "actor_token": {"type": "string"},
    "actor_token_type": {"type": "string"}, "requested_token_type": {"type": "string"},
    **_CLIENT}, ["grant_type"])
_REVOKE = _form_body({"token": {"type": "string"}, "token_type_hint": {"type": "string"},
                      **_CLIENT}, ["token"])


def _auth_audiences(iss: Issuer) -> list[str]:
    # RFC 7523 §3 item 3: the assertion's aud names the token endpoint (or the issuer).
    return [iss.url("/token"), iss.cfg.issuer, iss.url("/revoke"), iss.url("/introspect")]


@router.post("/token", openapi_extra=_TOKEN)
async def token_documented(request: Request) -> Response:
    """Describes POST /token in the OpenAPI document; `create_app` serves it with `token`."""
    return await token(request)


async def token(request: Request) -> Response:
    """POST /token as a plain Starlette endpoint, routed ahead of the FastAPI routes.

    It reads its form itself, so FastAPI's per-request work (route resolution through the
    included routers, dependency solving, its exit stack) would buy it nothing; that is a
    noticeable share of a refresh grant. Errors still go through the app's error renderer.
    """
    iss = issuer_of(request)
    p = await forms.form(request, iss.cfg.limits.max_body_bytes)
    grant_type = forms.need_str(p, "grant_type", 100)
    addr = address(request)
    authz = request.headers.get("authorization")
    now = iss.now()
    # RFC 9449 §5: a proof binds the tokens to its key (checked before any grant work)
    jkt = iss.dpop.proof_jkt(request, iss.url("/token"))
    if grant_type == "refresh_token":
        rt = forms.need_str(p, "refresh_token", 256)
        scope = forms.scope_list(forms.opt_str(p, "scope"))
        client: clients.Client | None = None
        anonymous = authz is None and not any(
            k in p for k in ("client_id", "client_secret", "client_assertion"))
        if not anonymous:
            async with iss.db.begin() as conn:
                client = await clientauth.authenticate(conn, p, authz,
                                                       audiences=_auth_audiences(iss), now=now)
        out, _ = await grants.refresh_grant(iss, rt, client, addr, public_only=anonymous,
                                            scope=scope or None, jkt=jkt)
        return _answer(iss, out)
    if grant_type == "client_credentials":
        scope = forms.scope_list(forms.opt_str(p, "scope"))
        audience = forms.opt_str(p, "audience", 512) or forms.opt_str(p, "resource", 512)
        async with iss.db.begin() as conn:
            client = await clientauth.authenticate(conn, p, authz, audiences=_auth_audiences(iss),
                                                   now=now, allow_public=False)
            out = await grants.client_credentials(iss, conn, client, scope, audience, addr,
                                                  jkt=jkt)
        return _answer(iss, out)
    if grant_type == "authorization_code":
        code = forms.need_str(p, "code", 256)
        async with iss.db.begin() as conn:
            client = await clientauth.authenticate(conn, p, authz,
                                                   audiences=_auth_audiences(iss), now=now)
        out = await grants.authorization_code(
            iss, client, code, forms.opt_str(p, "redirect_uri"),
            forms.opt_str(p, "code_verifier", 256), addr, jkt=jkt)
        return _answer(iss, out)
    if grant_type == exchange.GRANT_TYPE:
        async with iss.db.begin() as conn:
            client = await clientauth.authenticate(conn, p, authz, audiences=_auth_audiences(iss),
                                                   now=now, allow_public=False)
            grants.check_dpop(client, jkt)  # RFC 9449 §5.2: a client that must use DPoP
            out = await exchange.exchange(iss, conn, client, p, addr, jkt=jkt)
        return _answer(iss, out)
    raise UnsupportedGrantType(f"grant_type {grant_type[:40]!r} is not supported")


def _answer(iss: Issuer, out: dict[str, Any]) -> Response:
    resp = no_store(out)
    nonce = iss.dpop.fresh_nonce()
    if nonce is not None:
        resp.headers["DPoP-Nonce"] = nonce  # RFC 9449 §8.2: the next proof's nonce
    return resp


@router.post("/revoke", openapi_extra=_REVOKE)
async def revoke(request: Request) -> Response:
    """RFC 7009 §2.1: the client revokes one of its own tokens; unknown tokens get 200 too."""
    iss = issuer_of(request)
    p = await forms.form(request, iss.cfg.limits.max_body_bytes)
    tok = forms.need_str(p, "token", 8192)
    now = iss.now()
    async with iss.db.begin() as conn:
        client = await clientauth.authenticate(conn, p, request.headers.get("authorization"),
                                               audiences=_auth_audiences(iss), now=now)
        row = await refresh.find(conn, tok) if len(tok) <= 256 else None
        if row is not None:
            if row.client_id == client.client_id:
                await refresh.revoke_family(conn, row.family_id)
                # RFC 7009 §2.1: the access tokens of the same grant go with it
                await revocations.emit_family(conn, row.family_id, now=now, reason="rfc7009")
                await _audit(conn, now, "revoked", client.client_id, address(request),
                             kind="refresh_token")
        else:
            claims = tokens.verify_access(iss.ring, tok, issuer=iss.cfg.issuer, now=now)
            if claims is not None and claims.get("client_id") == client.client_id:
                await iss.revoke_jti(conn, str(claims["jti"]), int(claims["exp"]))
                await _audit(conn, now, "revoked", client.client_id, address(request),
                             kind="access_token")
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


async def _audit(conn: Any, now: int, event: str, client_id: str, addr: str, **kw: Any) -> None:
    await audit.record(conn, now, event, client_id=client_id, address=addr, **kw)


@router.post("/introspect", openapi_extra=_REVOKE)
async def introspect(request: Request) -> JSONResponse:
    """RFC 7662 §2: confidential clients (resource servers) only; inactive says nothing more."""
    iss = issuer_of(request)
    p = await forms.form(request, iss.cfg.limits.max_body_bytes)
    tok = forms.need_str(p, "token", 8192)
    now = iss.now()
    inactive = {"active": False}
    async with iss.db.begin() as conn:
        await clientauth.authenticate(conn, p, request.headers.get("authorization"),
                                      audiences=_auth_audiences(iss), now=now,
                                      allow_public=False)
        row = await refresh.find(conn, tok) if len(tok) <= 256 else None
        if row is not None:
            live = (not row.used and not row.revoked and row.expires_at > now
                    and (row.sid is None or await sessions.is_live(conn, row.sid, now)))
            if not live:
                return no_store(inactive)
            return no_store({"active": True, "token_type": "refresh_token",
                             "client_id": row.client_id, "scope": " ".join(json.loads(row.scope)),
                             "exp": row.expires_at, "iss": iss.cfg.issuer,
                             **({"sub": str(row.user_id)} if row.user_id is not None else {})})
        claims = tokens.verify_access(iss.ring, tok, issuer=iss.cfg.issuer, now=now)
        if claims is None or await iss.jti_revoked(conn, str(claims["jti"])):
            return no_store(inactive)
        sid = claims.get("sid")
        if isinstance(sid, str) and not await sessions.is_live(conn, sid, now):
            return no_store(inactive)
    bound = isinstance(claims.get("cnf"), dict)
    return no_store({"active": True, "token_type": "DPoP" if bound else "Bearer", **claims})
