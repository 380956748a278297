"""Request size limit as a pure ASGI middleware: a declared oversize body gets 413 at once."""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from wardgate.issuer.errors import PayloadTooLarge, render


def too_large(scope: Scope, max_bytes: int) -> Response | None:
    """The 413 answer when the declared body is over `max_bytes` (or not a number)."""
    for name, value in scope["headers"]:
        if name == b"content-length" and (not value.isdigit() or int(value) > max_bytes):
            return render(PayloadTooLarge(f"body larger than {max_bytes} bytes"))
    return None


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            resp = too_large(scope, self.max_bytes)
            if resp is not None:
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)
