"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2) at `GET /logout`.

A valid `id_token_hint` is required: without it a cross-site link could sign anyone out (logout
CSRF), so such requests change nothing. The hint may have expired (§2 allows it); its
signature, issuer and `sid` are what count.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry
from starlette.responses import HTMLResponse, RedirectResponse, Response

from wardgate.issuer import audit, clients, cookies, revocations, sessions
from wardgate.issuer.deps import address, issuer_of
from wardgate.issuer.errors import BadAuthorizeRequest
from wardgate.issuer.service import Issuer
from wardgate.issuer.tokens import MAX_TOKEN_BYTES

router = APIRouter(tags=["login"])
_QUERY = {"parameters": [{"name": n, "in": "query", "required": n == "id_token_hint",
                          "schema": {"type": "string"}}
                         for n in ("id_token_hint", "post_logout_redirect_uri", "state")]}


def _hint_claims(iss: Issuer, hint: str) -> dict[str, Any] | None:
    if not hint or len(hint) > MAX_TOKEN_BYTES or not iss.ring.algorithms():
        return None
    try:
        tok = jwt.decode(hint, iss.ring.verify_set,
                         registry=JWSRegistry(algorithms=iss.ring.algorithms()))
    except (JoseError, ValueError, TypeError, RecursionError):
        return None
    c = dict(tok.claims)
    if tok.header.get("typ") != "JWT" or c.get("iss") != iss.cfg.issuer:
        return None  # an access token (typ at+jwt) is not an ID token
    if not isinstance(c.get("sid"), str) or not isinstance(c.get("aud"), str):
        return None
    return c


@router.get("/logout", openapi_extra=_QUERY)
async def end_session(request: Request) -> Response:
    iss = issuer_of(request)
    q = request.query_params
    claims = _hint_claims(iss, q.get("id_token_hint", ""))
    if claims is None:
        raise BadAuthorizeRequest("a valid id_token_hint is required to sign out")
    uri = q.get("post_logout_redirect_uri")
    if uri is not None:
        async with iss.db.begin() as conn:
            client = await clients.get_client(conn, claims["aud"])
        # Exact match against the client's registered redirect URIs: no open redirector.
        if client is None or uri not in client.redirect_uris:
            raise BadAuthorizeRequest("post_logout_redirect_uri is not registered")
    now = iss.now()
    async with iss.db.begin() as conn:
        await sessions.end(conn, claims["sid"])
        await revocations.emit_session(conn, claims["sid"], now=now, reason="logout")
        await audit.record(conn, now, "logout", client_id=claims["aud"],
                           address=address(request), sid=claims["sid"], initiated_by="rp")
    resp: Response
    if uri is not None:
        state = q.get("state")
        params = urlencode({"state": state}) if state else ""
        target = uri + (("&" if "?" in uri else "?") + params if params else "")
        resp = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    else:
        resp = HTMLResponse("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                            "<title>Signed out</title></head><body><h1>You are signed out"
                            f"</h1><p>{escape(iss.cfg.issuer)}</p></body></html>",
                            headers={"Cache-Control": "no-store",
                                     "Content-Security-Policy": "default-src 'none'"})
    cookies.clear_all(resp, iss.cfg.browser.same_site)
    return resp
