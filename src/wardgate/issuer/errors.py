"""Every error the issuer answers with, rendered into a response in exactly one place.

    IssuerError
    ├── OAuthError                 RFC 6749 §5.2 JSON body {"error", "error_description"}
    │   ├── InvalidRequest (400)   malformed or missing parameters, bad content type
    │   ├── InvalidClient (401)    client authentication failed (§5.2: 401 + WWW-Authenticate)
    │   ├── InvalidGrant (400)     bad/expired/reused code or refresh token, bad PKCE verifier
    │   ├── UnauthorizedClient (400) / UnsupportedGrantType (400) / InvalidScope (400)
    │   ├── InvalidTarget (400)    RFC 8707 §2: audience the client may not ask for
    │   ├── AccessDenied (403)     wrong password, disabled user (always the same message)
    │   ├── InvalidToken (401)     RFC 6750 §3.1 at /userinfo (WWW-Authenticate: Bearer)
    │   ├── InvalidDpopProof (400) RFC 9449 §5: a missing, invalid or wrong-key DPoP proof
    │   ├── UseDpopNonce (400)     RFC 9449 §8: the proof needs the nonce in DPoP-Nonce
    │   ├── CsrfFailed (403)       cookie-authenticated request without a valid CSRF token
    │   ├── PayloadTooLarge (413) / UnsupportedMediaType (415)
    │   ├── SlowDown (429)         login throttling, with Retry-After
    │   ├── LoginRefused (403)     login detection: the client's network is flagged (Retry-After)
    │   └── NotFound (404) / MethodNotAllowed (405)
    ├── AuthorizeError             errors of GET/POST /authorize (RFC 6749 §4.1.2.1)
    │   ├── BadAuthorizeRequest (400) unknown client or redirect URI: an HTML page, no redirect
    │   └── AuthorizeRedirect (303) everything else: back to the client with error and state
    └── TemporarilyUnavailable (503) no signing key, database unavailable
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from starlette.responses import RedirectResponse, Response

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1


class IssuerError(Exception):
    status = 500
    error = "server_error"

    def __init__(self, description: str = "") -> None:
        super().__init__(description or self.error)
        self.description = description

    def headers(self) -> dict[str, str]:
        return {}


class OAuthError(IssuerError):
    pass


class InvalidRequest(OAuthError):
    status, error = 400, "invalid_request"


class InvalidClient(OAuthError):
    status, error = 401, "invalid_client"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Basic realm="wardgate-issuer"'}


class InvalidGrant(OAuthError):
    status, error = 400, "invalid_grant"


class UnauthorizedClient(OAuthError):
    status, error = 400, "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    status, error = 400, "unsupported_grant_type"


class UnsupportedTokenType(OAuthError):
    status, error = 400, "unsupported_token_type"  # RFC 7009 §2.2.1


class InvalidScope(OAuthError):
    status, error = 400, "invalid_scope"


class InvalidTarget(OAuthError):
    status, error = 400, "invalid_target"


class AccessDenied(OAuthError):
    status, error = 403, "access_denied"


class InvalidToken(OAuthError):
    status, error = 401, "invalid_token"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="wardgate-issuer", error="invalid_token"'}


class InvalidDpopProof(OAuthError):
    status, error = 400, "invalid_dpop_proof"


class UseDpopNonce(OAuthError):
    status, error = 400, "use_dpop_nonce"

    def __init__(self, nonce: str) -> None:
        super().__init__("the DPoP proof must carry the nonce in DPoP-Nonce")
        self.nonce = nonce

    def headers(self) -> dict[str, str]:
        return {"DPoP-Nonce": self.nonce}


class CsrfFailed(OAuthError):
    status, error = 403, "csrf_failed"


class PayloadTooLarge(OAuthError):
    status, error = 413, "invalid_request"


class UnsupportedMediaType(OAuthError):
    status, error = 415, "invalid_request"


class NotFound(OAuthError):
    status, error = 404, "not_found"


class MethodNotAllowed(OAuthError):
    status, error = 405, "invalid_request"


class SlowDown(OAuthError):
    status, error = 429, "slow_down"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("too many failed logins; retry later")
        self.retry_after_s = max(1, int(retry_after_s + 0.999))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class LoginRefused(OAuthError):
    """Login detection (issuer/detection.py) flagged the client's network: every attempt
    from it is refused, before any password is checked, until the verdict expires."""

    status, error = 403, "access_denied"

    def __init__(self, description: str, retry_after_s: float) -> None:
        super().__init__(description)
        self.retry_after_s = max(1, int(retry_after_s + 0.999))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class AuthorizeError(IssuerError):
    pass


class BadAuthorizeRequest(AuthorizeError):
    status, error = 400, "invalid_request"


class AuthorizeRedirect(AuthorizeError):
    status = 303

    def __init__(self, *, redirect_uri: str, issuer: str, error: str, description: str = "",
                 state: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.redirect_uri = redirect_uri
        self.issuer = issuer
        self.state = state

    def location(self) -> str:
        params = {"error": self.error}
        if self.description:
            params["error_description"] = _clean(self.description)
        if self.state is not None:
            params["state"] = self.state
        params["iss"] = self.issuer  # RFC 9207 §2
        sep = "&" if "?" in self.redirect_uri else "?"
        return self.redirect_uri + sep + urlencode(params)


class TemporarilyUnavailable(IssuerError):
    status, error = 503, "temporarily_unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


def _clean(text: str) -> str:
    # RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E only.
    return "".join(c for c in text if 0x20 <= ord(c) <= 0x7E and c not in '"\\')


def render(err: IssuerError) -> Response:
    if isinstance(err, AuthorizeRedirect):
        return RedirectResponse(err.location(), status_code=303, headers=_NO_STORE)
    if isinstance(err, BadAuthorizeRequest):
        from wardgate.issuer.loginpage import error_page

        return error_page(err.description, err.status)
    body: dict[str, str] = {"error": err.error}
    if err.description:
        body["error_description"] = _clean(err.description)
    return Response(json.dumps(body), status_code=err.status, media_type="application/json",
                    headers={**_NO_STORE, **err.headers()})
