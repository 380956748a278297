"""The service side's answers: the gateway's RFC 6750 errors, rendered in this one place.

A service raises the same typed errors as the gateway (`wardgate.errors.MissingToken`,
`InvalidToken`, `InsufficientScope`, `InvalidRequest`, `ServiceUnavailable`), so a client sees the
same status, `WWW-Authenticate` challenge and RFC 9457 body whichever hop refused it.
"""

from __future__ import annotations

import json

from wardgate.errors import (
    AuthError,
    GatewayError,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    ServiceUnavailable,
)

__all__ = ["AuthError", "GatewayError", "InsufficientScope", "InvalidRequest", "InvalidToken",
           "MissingToken", "ServiceUnavailable", "render"]


def render(err: GatewayError, *, realm: str | None = None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) for an error; never a trace, never the token."""
    if realm is not None and isinstance(err, AuthError):
        err.realm = realm
    body = json.dumps({"type": "about:blank", "title": err.title, "status": err.status,
                       "detail": err.detail, "code": err.code},
                      separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/problem+json"),
               (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]
    headers += [(name.lower(), value) for name, value in err.extra_headers()]
    return err.status, headers, body
