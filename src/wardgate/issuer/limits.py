"""Request size limit as a pure ASGI middleware: a declared oversize body gets 413 at once."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from wardgate.issuer.errors import PayloadTooLarge, render


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length":
                    if not value.isdigit() or int(value) > self.max_bytes:
                        resp = render(PayloadTooLarge(f"body larger than {self.max_bytes} bytes"))
                        await resp(scope, receive, send)
                        return
        await self.app(scope, receive, send)
