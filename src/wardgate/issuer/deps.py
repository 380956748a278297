"""Small helpers every route uses: the Issuer, the client address, no-store JSON answers."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from wardgate.issuer.service import Issuer

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def issuer_of(request: Request) -> Issuer:
    iss: Issuer = request.app.state.issuer
    return iss


def address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def no_store(body: dict[str, Any], status: int = 200) -> JSONResponse:
    # RFC 6749 §5.1: token responses must not be cached.
    return JSONResponse(body, status_code=status, headers=NO_STORE)


def bearer(request: Request) -> str | None:
    """RFC 6750 §2.1: `Authorization: Bearer <token>`; the scheme is case-insensitive."""
    h = request.headers.get("authorization")
    if h is None:
        return None
    scheme, _, token = h.partition(" ")
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token
