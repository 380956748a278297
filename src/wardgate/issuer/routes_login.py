"""First-party login (JSON and browser cookie modes), cookie refresh, logout and userinfo."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from wardgate.dpop.thumb import b64url
from wardgate.issuer import (
    audit,
    clients,
    cookies,
    csrf,
    forms,
    refresh,
    revocations,
    sessions,
    tokens,
    users,
)
from wardgate.issuer.deps import address, bearer, issuer_of, no_store
from wardgate.issuer.errors import (
    CsrfFailed,
    InvalidDpopProof,
    InvalidGrant,
    InvalidRequest,
    InvalidToken,
)
from wardgate.issuer.grants import refresh_grant
from wardgate.issuer.service import Issuer

router = APIRouter(tags=["login"])

_LOGIN_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["username", "password"],
    "properties": {"username": {"type": "string", "maxLength": 150},
                   "password": {"type": "string", "maxLength": 1024},
                   "mode": {"type": "string", "enum": ["token", "cookie"]}}}}}}}
_TOKEN_RESPONSE = {"200": {"description": "tokens", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"access_token": {"type": "string"},
                                     "refresh_token": {"type": "string"},
                                     "token_type": {"type": "string"},
                                     "expires_in": {"type": "integer"}}}}}}}


@router.post("/login", openapi_extra=_LOGIN_BODY, responses=_TOKEN_RESPONSE)  # type: ignore[arg-type]
async def login(request: Request) -> Response:
    iss = issuer_of(request)
    body = await forms.json_object(request, iss.cfg.limits.max_body_bytes)
    username = forms.need_str(body, "username", 150)
    password = forms.need_str(body, "password", 1024)
    mode = body.get("mode", "token")
    if mode not in ("token", "cookie") or (mode == "cookie" and not iss.cfg.browser.enabled):
        raise InvalidRequest("mode must be 'token' or 'cookie' (if browser mode is enabled)")
    # RFC 9449 §5: a proof binds the tokens (and the public login client's refresh token),
    # in cookie mode too: the gateway then wants a proof with the cookie (docs/security.md)
    jkt = iss.dpop.proof_jkt(request, iss.url("/login"))
    user = await iss.check_password(username, password, address(request))
    now = iss.now()
    t = iss.cfg.tokens
    async with iss.db.begin() as conn:
        client = await clients.get_client(conn, t.login_client_id)
        assert client is not None  # created at start-up
        sess_cookie, sess = await sessions.create(conn, user.id, now, t.session_ttl_s)
        grant = iss.user_grant(user, client, [], t.default_audience, sess.sid)
        if jkt is not None:
            grant = dataclasses.replace(grant, jkt=jkt, refresh_jkt=jkt)
        elif client.dpop_bound:
            raise InvalidDpopProof("this client must send a DPoP proof")
        out, _ = await iss.tokens(conn, grant, now)
        await audit.record(conn, now, "login", username=user.username,
                           client_id=client.client_id, address=address(request), mode=mode)
    resp = no_store(out) if mode == "token" else \
        _cookie_answer(iss, out, sess.sid, sess_cookie)
    return _with_nonce(iss, resp)


def _with_nonce(iss: Issuer, resp: Response) -> Response:
    nonce = iss.dpop.fresh_nonce()
    if nonce is not None:
        resp.headers["DPoP-Nonce"] = nonce  # RFC 9449 §8.2: the next proof's nonce
    return resp


def _cookie_answer(iss: Issuer, out: dict[str, Any], sid: str | None,
                   session_cookie: str | None) -> Response:
    t = iss.cfg.tokens
    token = csrf.issue(iss.csrf_key, sid or "")
    # token_type DPoP: the access cookie is bound (cnf.jkt) and needs a proof at the gateway;
    # its proofs carry `ath`, the token's hash, which the page cannot compute from an
    # HttpOnly cookie: the answer gives it (a hash, useless as a credential)
    body = {"token_type": out["token_type"], "expires_in": out["expires_in"],
            "scope": out.get("scope", ""), "csrf_token": token}
    if out["token_type"] == "DPoP":
        body["ath"] = b64url(hashlib.sha256(out["access_token"].encode("ascii")).digest())
    resp = no_store(body)
    cookies.set_login(resp, access=out["access_token"], access_ttl=t.access_ttl_s,
                      refresh=out.get("refresh_token"), refresh_ttl=t.refresh_idle_s,
                      csrf=token, session=session_cookie, session_ttl=t.session_ttl_s,
                      same_site=iss.cfg.browser.same_site)
    return resp


@router.post(cookies.REFRESH_PATH)
async def session_refresh(request: Request) -> Response:
    """Browser-mode refresh: refresh cookie + CSRF header; rotates and resets the cookies."""
    iss = issuer_of(request)
    if not iss.cfg.browser.enabled:
        raise InvalidRequest("browser mode is disabled")
    token = request.cookies.get(cookies.REFRESH)
    if not token:
        raise InvalidGrant("no refresh cookie")
    async with iss.db.begin() as conn:
        row = await refresh.find(conn, token)
    if row is None:
        raise InvalidGrant("refresh token unknown")
    if not csrf.double_submit_ok(iss.csrf_key, row.sid or "", request.headers.get(csrf.HEADER),
                                 request.cookies.get(cookies.CSRF)):
        raise CsrfFailed("missing or invalid CSRF token")
    # a bound refresh cookie (DPoP login) is refused without a proof of its key, before
    # rotation (grants._check_binding); a proof here binds the new access cookie to it
    jkt = iss.dpop.proof_jkt(request, iss.url(cookies.REFRESH_PATH))
    out, row = await refresh_grant(iss, token, None, address(request), public_only=True,
                                   jkt=jkt)
    return _with_nonce(iss, _cookie_answer(iss, out, row.sid, None))


async def _sid_from_cookies(iss: Issuer, request: Request) -> str | None:
    now = iss.now()
    value = request.cookies.get(cookies.SESSION)
    if value:
        async with iss.db.begin() as conn:
            s = await sessions.lookup(conn, value, now)
        if s is not None:
            return s.sid
    access = request.cookies.get(cookies.ACCESS)
    if access:
        claims = tokens.verify_access(iss.ring, access, issuer=iss.cfg.issuer, now=now)
        if claims and isinstance(claims.get("sid"), str):
            return str(claims["sid"])
    return None


_LOGOUT_QUERY = {"parameters": [{
    "name": "everywhere", "in": "query", "required": False,
    "schema": {"type": "string", "enum": ["true", "false"]},
    "description": "true: end every session of the user, not only this one"}]}


@router.post("/logout", openapi_extra=_LOGOUT_QUERY)
async def logout(request: Request) -> Response:
    """End the session: revoke its refresh families, end SSO, clear cookies. With
    `?everywhere=true`, every session of the user ends and every token issued to them
    before now is refused at every gateway (a subject revocation event).

    Bearer access token in the header; or browser cookies plus the CSRF header; or a
    `refresh_token` in a JSON body.
    """
    iss = issuer_of(request)
    now = iss.now()
    everywhere = _everywhere(request)
    sid: str | None = None
    family: str | None = None
    user_id: int | None = None
    token = bearer(request)
    if token is not None:
        claims = tokens.verify_access(iss.ring, token, issuer=iss.cfg.issuer, now=now)
        if claims is None or "cnf" in claims:
            # RFC 9449 §7.2: a DPoP-bound token is never taken as a bearer token
            raise InvalidToken("access token invalid")
        sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
    elif request.cookies.get(cookies.SESSION) or request.cookies.get(cookies.ACCESS):
        sid = await _sid_from_cookies(iss, request)
        if sid is None or not csrf.double_submit_ok(
                iss.csrf_key, sid, request.headers.get(csrf.HEADER),
                request.cookies.get(cookies.CSRF)):
            raise CsrfFailed("missing or invalid CSRF token")
    else:
        body = await forms.json_object(request, iss.cfg.limits.max_body_bytes)
        rt = forms.need_str(body, "refresh_token", 256)
        async with iss.db.begin() as conn:
            row = await refresh.find(conn, rt)
        if row is not None:
            sid, family, user_id = row.sid, row.family_id, row.user_id
    if everywhere:
        if user_id is None and sid is not None:
            async with iss.db.begin() as conn:
                user_id = await sessions.user_of(conn, sid)
        if user_id is None:
            # a service's token, or a refresh token already gone: no user to log out
            raise InvalidRequest("everywhere=true needs a user's session or refresh token")
    async with iss.db.begin() as conn:
        if everywhere:
            assert user_id is not None
            await sessions.end_for_user(conn, user_id)
            await revocations.emit_subject(conn, str(user_id), now=now,
                                           max_ttl_s=iss.max_token_ttl(),
                                           reason="logout_everywhere")
            await audit.record(conn, now, "logout_everywhere", address=address(request),
                               sid=sid, user_id=user_id)
            sid = family = None  # covered by the user's events above
        if family is not None:
            await refresh.revoke_family(conn, family)
            await revocations.emit_family(conn, family, now=now, reason="logout")
        if sid is not None:
            await sessions.end(conn, sid)
            await revocations.emit_session(conn, sid, now=now, reason="logout")
        await audit.record(conn, now, "logout", address=address(request), sid=sid)
    resp = no_store({"logged_out": True, "everywhere": everywhere})
    cookies.clear_all(resp, iss.cfg.browser.same_site)
    return resp


def _everywhere(request: Request) -> bool:
    raw = request.query_params.getlist("everywhere")
    if not raw:
        return False
    if len(raw) > 1 or raw[0] not in ("true", "false"):
        raise InvalidRequest("everywhere must be true or false, once")
    return raw[0] == "true"


@router.get("/userinfo")
async def userinfo(request: Request) -> JSONResponse:
    """OIDC Core §5.3: claims about the user behind a valid access token."""
    iss = issuer_of(request)
    token = bearer(request)
    if token is None:
        raise InvalidToken("bearer access token required")
    now = iss.now()
    claims = tokens.verify_access(iss.ring, token, issuer=iss.cfg.issuer, now=now)
    sub = claims.get("sub") if claims else None
    # User tokens carry a session id and a numeric subject; client_credentials tokens neither.
    if claims is None or "cnf" in claims or not isinstance(claims.get("sid"), str) \
            or not isinstance(sub, str) \
            or not (sub.isascii() and sub.isdigit()):
        raise InvalidToken("access token invalid")
    async with iss.db.begin() as conn:
        if await iss.jti_revoked(conn, str(claims["jti"])):
            raise InvalidToken("access token revoked")
        sid = claims.get("sid")
        if isinstance(sid, str) and not await sessions.is_live(conn, sid, now):
            raise InvalidToken("session ended")
        user = await users.get_by_id(conn, int(claims["sub"]))
    if user is None or user.disabled:
        raise InvalidToken("user unknown")
    return no_store({"sub": str(user.id), "preferred_username": user.username,
                     "roles": list(user.roles), "scope": claims.get("scope", "")})
