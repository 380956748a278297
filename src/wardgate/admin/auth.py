"""Admin authentication: one bearer token, compared in constant time; and the dashboard's
session cookie, an HMAC of the token (never the token itself), accepted only for reads.

The session value is `ISSUED.MAC` where MAC = HMAC-SHA256(token, "wardgate-admin-session" |
process nonce | ISSUED). Changing the token, or restarting `wardgate run` (a new nonce), ends
every session; so does its age passing SESSION_MAX_AGE_S. Sans-I/O: the clock is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import HTTPException, Request

_PREFIX = "bearer "
COOKIE = "wardgate_admin"
SESSION_MAX_AGE_S = 12 * 3600
#: methods a session cookie may authorise; anything that changes state needs the bearer token
COOKIE_METHODS = frozenset({"GET", "HEAD"})


def presented_token(request: Request) -> bytes | None:
    """The token from `Authorization: Bearer` (None when absent or not a bearer)."""
    header = request.headers.get("authorization")
    if header is None or header[: len(_PREFIX)].lower() != _PREFIX:
        return None
    return header[len(_PREFIX):].strip().encode()


def token_ok(expected: bytes | None, presented: bytes | None) -> bool:
    """False when no token is configured: the admin API then refuses everyone."""
    if expected is None or presented is None:
        return False
    return hmac.compare_digest(expected, presented)


class Sessions:
    """Issues and checks dashboard session values for one admin listener."""

    __slots__ = ("_nonce", "max_age_s")

    def __init__(self, nonce: bytes | None = None, max_age_s: int = SESSION_MAX_AGE_S) -> None:
        self._nonce = nonce if nonce is not None else secrets.token_bytes(32)
        self.max_age_s = max_age_s

    def _mac(self, token: bytes, issued: int) -> str:
        msg = b"wardgate-admin-session|" + self._nonce + b"|" + str(issued).encode()
        return hmac.new(token, msg, hashlib.sha256).hexdigest()

    def issue(self, token: bytes, now: float) -> str:
        issued = int(now)
        return f"{issued}.{self._mac(token, issued)}"

    def valid(self, token: bytes | None, value: str | None, now: float) -> bool:
        if token is None or not value or len(value) > 128:
            return False
        issued_s, _, mac = value.partition(".")
        if not issued_s.isdigit() or len(issued_s) > 12:
            return False
        issued = int(issued_s)
        if not issued <= now + 5 or now - issued > self.max_age_s:
            return False
        return hmac.compare_digest(self._mac(token, issued).encode(), mac.encode())


def request_authorized(request: Request, token: bytes | None, sessions: Sessions,
                       now: float) -> bool:
    """A bearer header decides alone when present; otherwise a session cookie, for reads only
    (SameSite=Strict keeps it off cross-site requests; reads change nothing)."""
    if request.headers.get("authorization") is not None:
        return token_ok(token, presented_token(request))
    if request.method not in COOKIE_METHODS:
        return False
    return sessions.valid(token, request.cookies.get(COOKIE), now)


def unauthorized() -> HTTPException:
    return HTTPException(401, "admin token required",
                         headers={"WWW-Authenticate": 'Bearer realm="wardgate-admin"'})
