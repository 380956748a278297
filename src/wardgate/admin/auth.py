"""Admin authentication: one bearer token, compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

_PREFIX = "bearer "
COOKIE = "wardgate_admin"


def presented_token(request: Request) -> bytes | None:
    """The token from `Authorization: Bearer` or the dashboard's login cookie."""
    header = request.headers.get("authorization")
    if header is not None:
        if header[: len(_PREFIX)].lower() != _PREFIX:
            return None
        return header[len(_PREFIX):].strip().encode()
    cookie = request.cookies.get(COOKIE)
    return cookie.encode() if cookie else None


def token_ok(expected: bytes | None, presented: bytes | None) -> bool:
    """False when no token is configured: the admin API then refuses everyone."""
    if expected is None or presented is None:
        return False
    return hmac.compare_digest(expected, presented)


def unauthorized() -> HTTPException:
    return HTTPException(401, "admin token required",
                         headers={"WWW-Authenticate": 'Bearer realm="wardgate-admin"'})
