"""Authorization endpoint with PKCE S256 and the hosted login page (SSO via one session).

RFC 6749 §4.1, RFC 7636, OIDC Core §3.1.2. Until client_id and redirect_uri are verified,
errors are shown on a page and never redirected (§4.1.2.1: no open redirector); after that,
errors go back to the client with `state` and `iss` (RFC 9207).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy import insert
from starlette.responses import RedirectResponse, Response

from wardgate.issuer import audit, clients, cookies, csrf, errors, forms, loginpage, sessions, users
from wardgate.issuer.deps import address, issuer_of
from wardgate.issuer.errors import (
    AccessDenied,
    AuthorizeRedirect,
    BadAuthorizeRequest,
    InvalidRequest,
    LoginRefused,
    OAuthError,
    SlowDown,
)
from wardgate.issuer.grants import pick_audience
from wardgate.issuer.schema import auth_codes
from wardgate.issuer.service import Issuer

router = APIRouter(tags=["authorize"])

_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url(SHA-256), RFC 7636 §4.2
# RFC 9449 §10 / RFC 7638: a JWK SHA-256 thumbprint is base64url of 32 bytes, 43 characters
_JKT = _CHALLENGE
PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
          "code_challenge", "code_challenge_method", "prompt", "resource", "dpop_jkt")


@dataclass(frozen=True)
class AuthzRequest:
    client: clients.Client
    redirect_uri: str
    scope: list[str]
    state: str | None
    nonce: str | None
    challenge: str
    audience: str
    prompt: str | None
    issuer: str
    dpop_jkt: str | None = None  # RFC 9449 §10: the code is bound to this key


    def error(self, error: str, description: str) -> AuthorizeRedirect:
        return AuthorizeRedirect(redirect_uri=self.redirect_uri, issuer=self.issuer,
                                 error=error, description=description, state=self.state)

    def fields(self) -> dict[str, str]:
        out = {"response_type": "code", "client_id": self.client.client_id,
               "redirect_uri": self.redirect_uri, "scope": " ".join(self.scope),
               "code_challenge": self.challenge, "code_challenge_method": "S256",
               "resource": self.audience}
        if self.state is not None:
            out["state"] = self.state
        if self.nonce is not None:
            out["nonce"] = self.nonce
        if self.dpop_jkt is not None:
            out["dpop_jkt"] = self.dpop_jkt
        return out


def _redirect(iss: Issuer, uri: str, params: dict[str, str]) -> RedirectResponse:
    params = {**params, "iss": iss.cfg.issuer}
    sep = "&" if "?" in uri else "?"
    return RedirectResponse(uri + sep + urlencode(params), status_code=303,
                            headers={"Cache-Control": "no-store"})


async def _parse(iss: Issuer, p: dict[str, str]) -> AuthzRequest:
    cid = p.get("client_id", "")
    uri = p.get("redirect_uri", "")
    async with iss.db.begin() as conn:
        client = await clients.get_client(conn, cid) if cid and len(cid) <= 100 else None
    if client is None or client.disabled:
        raise BadAuthorizeRequest("unknown client")
    # Exact string match, no normalisation or prefix rules (RFC 9700 §4.1.1).
    if not uri or uri not in client.redirect_uris:
        raise BadAuthorizeRequest("redirect_uri is not registered for this client")
    state = p.get("state") or None
    if state is not None and len(state) > 1024:
        raise BadAuthorizeRequest("state too long")

    def fail(error: str, desc: str) -> AuthorizeRedirect:
        return AuthorizeRedirect(redirect_uri=uri, issuer=iss.cfg.issuer, error=error,
                                 description=desc, state=state)

    if p.get("response_type") != "code":
        raise fail("unsupported_response_type", "only response_type=code")
    if "authorization_code" not in client.grant_types:
        raise fail("unauthorized_client", "client may not use the code flow")
    challenge = p.get("code_challenge", "")
    if p.get("code_challenge_method") != "S256" or not _CHALLENGE.match(challenge):
        raise fail("invalid_request", "PKCE with code_challenge_method=S256 is required")
    try:
        scope = forms.scope_list(p.get("scope") or None)
        audience = pick_audience(client, p.get("resource") or None)
    except OAuthError as exc:
        raise fail(exc.error, exc.description) from None
    nonce = p.get("nonce") or None
    if nonce is not None and len(nonce) > 512:
        raise fail("invalid_request", "nonce too long")
    dpop_jkt = p.get("dpop_jkt")
    if dpop_jkt is not None and not _JKT.match(dpop_jkt):
        # RFC 9449 §10: the value is a JWK SHA-256 thumbprint (RFC 7638); anything else
        # would bind the code to a key no proof can match
        raise fail("invalid_request", "dpop_jkt must be the base64url SHA-256 JWK thumbprint "
                                      "(RFC 7638) of the client's DPoP key")
    return AuthzRequest(client, uri, scope, state, nonce, challenge, audience,
                        p.get("prompt") or None, iss.cfg.issuer, dpop_jkt)


async def _issue_code(iss: Issuer, req: AuthzRequest, user: users.User,
                      sess: sessions.Session) -> Response:
    now = iss.now()
    try:
        grant = iss.user_grant(user, req.client, req.scope, req.audience, sess.sid)
    except OAuthError as exc:
        raise req.error(exc.error, exc.description) from None
    code = sessions.new_secret()
    async with iss.db.begin() as conn:
        await conn.execute(insert(auth_codes).values(
            code_hash=sessions.digest(code), client_id=req.client.client_id, user_id=user.id,
            sid=sess.sid, redirect_uri=req.redirect_uri, scope=json.dumps(grant.scope),
            audience=req.audience, nonce=req.nonce, code_challenge=req.challenge,
            auth_time=sess.auth_time, expires_at=now + iss.cfg.tokens.auth_code_ttl_s,
            used=False, family_id=None, dpop_jkt=req.dpop_jkt))
    params = {"code": code}
    if req.state is not None:
        params["state"] = req.state
    return _redirect(iss, req.redirect_uri, params)


def _page(iss: Issuer, req: AuthzRequest, *, error: str | None = None, username: str = "",
          status: int = 200) -> Response:
    binding = secrets.token_urlsafe(16)
    fields = req.fields() | {"csrf_token": csrf.issue(iss.csrf_key, "login:" + binding)}
    resp = loginpage.render(client_name=req.client.name, action="/authorize", fields=fields,
                            redirect_uri=req.redirect_uri, username=username, error=error,
                            status=status)
    resp.set_cookie(cookies.LOGIN_CSRF, binding, max_age=1800, path="/", secure=True,
                    httponly=True, samesite="lax")
    return resp


_AUTHZ_QUERY = {"parameters": [
    {"name": n, "in": "query", "required": n in ("response_type", "client_id"),
     "schema": {"type": "string"}} for n in PARAMS]}


@router.get("/authorize", openapi_extra=_AUTHZ_QUERY)
async def authorize(request: Request) -> Response:
    iss = issuer_of(request)
    p = {k: v for k, v in request.query_params.items() if k in PARAMS}
    if any(len(request.query_params.getlist(k)) > 1 for k in PARAMS):
        raise BadAuthorizeRequest("repeated parameter")  # RFC 6749 §3.1
    req = await _parse(iss, p)
    value = request.cookies.get(cookies.SESSION)
    if value and req.prompt != "login":
        # SSO: one issuer session serves every application without a second password.
        async with iss.db.begin() as conn:
            sess = await sessions.lookup(conn, value, iss.now())
            user = await users.get_by_id(conn, sess.user_id) if sess else None
        if sess is not None and user is not None and not user.disabled:
            return await _issue_code(iss, req, user, sess)
    if req.prompt == "none":
        raise req.error("login_required", "no issuer session")
    return _page(iss, req)


@router.post("/authorize", include_in_schema=False)
async def authorize_login(request: Request) -> Response:
    iss = issuer_of(request)
    p = await forms.form(request, iss.cfg.limits.max_body_bytes)
    req = await _parse(iss, {k: v for k, v in p.items() if k in PARAMS})
    binding = request.cookies.get(cookies.LOGIN_CSRF, "")
    if not binding or not csrf.verify(iss.csrf_key, "login:" + binding, p.get("csrf_token")):
        return _page(iss, req, error="Your sign-in form expired. Please try again.", status=403)
    username = p.get("username", "")[:150]
    password = p.get("password", "")
    if not username or not password or len(password) > 1024:
        raise InvalidRequest("username and password are required")
    try:
        user = await iss.check_password(username, password, address(request), "/authorize")
    except LoginRefused as exc:
        page = _page(iss, req, error="Sign-in from your network is paused for a while. "
                     "Please try again later.", username=username, status=403)
        page.headers["Retry-After"] = str(exc.retry_after_s)
        return page
    except SlowDown as exc:
        page = _page(iss, req, error="Too many attempts. Please wait and try again.",
                     username=username, status=429)
        page.headers["Retry-After"] = str(exc.retry_after_s)
        return page
    except AccessDenied:
        return _page(iss, req, error="Invalid username or password.", username=username,
                     status=401)
    now = iss.now()
    async with iss.db.begin() as conn:
        value, sess = await sessions.create(conn, user.id, now, iss.cfg.tokens.session_ttl_s)
        await audit.record(conn, now, "login", username=user.username,
                           client_id=req.client.client_id, address=address(request),
                           mode="authorize")
    try:
        resp = await _issue_code(iss, req, user, sess)
    except AuthorizeRedirect as exc:
        resp = errors.render(exc)  # the session exists: its cookie must still be set
    resp.set_cookie(cookies.SESSION, value, max_age=iss.cfg.tokens.session_ttl_s, path="/",
                    secure=True, httponly=True, samesite="lax")
    resp.delete_cookie(cookies.LOGIN_CSRF, path="/", secure=True, httponly=True)
    return resp
