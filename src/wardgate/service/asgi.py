"""ASGI middleware for FastAPI/Starlette (any ASGI 3 app): authenticate every request.

Deny by default: a request without a valid identity gets the gateway's 401, except on
`public_paths`. On success the Identity is at `request.state.identity` (and
`scope["wardgate.identity"]`), where `require_scopes`/`require_roles` dependencies find it.
Errors raised further in (those dependencies) are rendered here too, so every refusal has the
same shape. The key set is loaded at lifespan start-up, or on the first request without one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wardgate.errors import GatewayError
from wardgate.service.auth import ServiceAuth
from wardgate.service.checks import SCOPE_KEY
from wardgate.service.errors import render


class WardgateMiddleware:
    def __init__(self, app: ASGIApp, auth: ServiceAuth, *,
                 public_paths: Iterable[str] = ("/healthz",), realm: str = "service") -> None:
        self.app = app
        self.auth = auth
        # exact paths only: a prefix rule would make "/healthz-admin" public by accident
        self.public = frozenset(public_paths)
        self.realm = realm

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["path"] not in self.public:
            client = scope.get("client")
            try:
                ident = await self.auth.authenticate(
                    list(scope["headers"]), peer=client[0] if client else None,
                    query=scope.get("query_string", b""))
            except GatewayError as err:
                await self._refuse(scope, send, err)
                return
            scope[SCOPE_KEY] = ident
            scope.setdefault("state", {})["identity"] = ident
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept"):
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except GatewayError as err:
            # a require_* dependency refused: answer like the gateway, if nothing was sent yet
            if started:
                raise
            await self._refuse(scope, send, err)

    async def _refuse(self, scope: Scope, send: Send, err: GatewayError) -> None:
        if scope["type"] == "websocket":
            # RFC 6455 §7.4.1: 1008 policy violation (closing before accept answers 403)
            await send({"type": "websocket.close", "code": 1008})
            return
        status, headers, body = render(err, realm=self.realm)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message: dict[str, Any] = dict(await receive())
            if message["type"] == "lifespan.startup":
                await self.auth.start()  # degraded start is fine: 503 until keys arrive
            elif message["type"] == "lifespan.shutdown":
                await self.auth.stop()
            return message
        return wrapped
