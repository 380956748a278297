"""WardgateMiddleware on a FastAPI app: lifespan loads the keys, every route is guarded unless
public, dependencies refuse with the gateway's answers (rendered by the middleware)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from starlette.websockets import WebSocket

from tests.service.support import JwksServer, SigningKey, claims
from wardgate.auth.identity import Identity
from wardgate.service import ServiceAuth, WardgateMiddleware, require_roles, require_scopes

Admin = Annotated[Identity, Depends(require_roles("admin"))]
Writer = Annotated[Identity, Depends(require_scopes("orders:read", "orders:write"))]


def make_app(auth: ServiceAuth) -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        ident = request.state.identity
        return {"sub": ident.sub, "roles": sorted(ident.roles)}

    @app.get("/admin")
    async def admin(who: Admin) -> dict[str, Any]:
        return {"sub": who.sub}

    @app.post("/orders")
    async def write(who: Writer) -> dict[str, Any]:
        return {"sub": who.sub}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    app.add_middleware(WardgateMiddleware, auth=auth, realm="orders")
    return app


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan (as uvicorn would) around an in-process client."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                   inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            yield client
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await task


async def websocket_outcome(app: FastAPI, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    """Drive one WebSocket handshake by hand; return what the app sent."""
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "path": "/ws", "raw_path": b"/ws",
             "query_string": b"", "headers": headers, "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 2), "scheme": "ws", "subprotocols": [], "root_path": ""}
    await app(scope, receive, send)
    return sent


@pytest.fixture
def zt_auth(jwks: JwksServer) -> ServiceAuth:
    return ServiceAuth.zero_trust(jwks.issuer, "api", jwks_uri=jwks.jwks_uri)


async def test_lifespan_loads_keys_before_the_first_request(zt_auth: ServiceAuth,
                                                            jwks: JwksServer) -> None:
    async with serving(make_app(zt_auth)):
        assert jwks.hits.get("/jwks.json") == 1
        assert zt_auth.ready()
    assert not zt_auth.ready()  # shutdown released the key source


async def test_zero_trust_app(zt_auth: ServiceAuth, jwks: JwksServer, key: SigningKey) -> None:
    user = key.mint(claims(jwks.issuer, roles=["user"], scope="orders:read"))
    admin = key.mint(claims(jwks.issuer, sub="1", roles=["admin"],
                            scope="orders:read orders:write"))
    async with serving(make_app(zt_auth)) as client:
        assert (await client.get("/healthz")).status_code == 200  # public: no token needed

        r = await client.get("/me")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="orders"'
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "no_token"

        r = await client.get("/me", headers={"Authorization": f"Bearer {user}x"})
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["www-authenticate"]

        r = await client.get("/me", headers={"Authorization": f"Bearer {user}"})
        assert r.status_code == 200 and r.json() == {"sub": "42", "roles": ["user"]}

        # a dependency refuses: the middleware renders it like the gateway would
        r = await client.get("/admin", headers={"Authorization": f"Bearer {user}"})
        assert r.status_code == 403
        assert r.headers["www-authenticate"].startswith(
            'Bearer realm="orders", error="insufficient_scope"')
        assert r.json()["code"] == "insufficient_scope"
        r = await client.get("/admin", headers={"Authorization": f"Bearer {admin}"})
        assert r.json() == {"sub": "1"}

        r = await client.post("/orders", headers={"Authorization": f"Bearer {user}"})
        assert r.status_code == 403
        assert r.headers["www-authenticate"].endswith('scope="orders:write"')
        r = await client.post("/orders", headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200

        r = await client.head("/me")
        assert r.status_code == 401 and r.content == b""


async def test_websocket_without_token_is_closed(zt_auth: ServiceAuth, jwks: JwksServer,
                                                 key: SigningKey) -> None:
    app = make_app(zt_auth)
    try:
        sent = await websocket_outcome(app, [])
        # RFC 6455 §7.4.1 policy violation, before accept (the client sees the handshake fail)
        assert sent == [{"type": "websocket.close", "code": 1008}]
        token = key.mint(claims(jwks.issuer))
        sent = await websocket_outcome(app, [(b"authorization", f"Bearer {token}".encode())])
        assert sent[0]["type"] == "websocket.accept"
        assert {"type": "websocket.send", "text": "hi"} in [
            {k: v for k, v in m.items() if k in ("type", "text")} for m in sent]
    finally:
        await zt_auth.stop()


async def test_without_lifespan_keys_load_on_first_request(zt_auth: ServiceAuth,
                                                           jwks: JwksServer,
                                                           key: SigningKey) -> None:
    transport = httpx.ASGITransport(app=make_app(zt_auth))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            token = key.mint(claims(jwks.issuer))
            r = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
    finally:
        await zt_auth.stop()


async def test_trusted_gateway_app() -> None:
    auth = ServiceAuth.trust_gateway(sub="X-User-Id", roles="X-User-Roles")
    app = make_app(auth)
    hdrs = {"X-User-Id": "5", "X-User-Roles": "admin"}
    local = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=local, base_url="http://svc") as client:
        assert (await client.get("/admin", headers=hdrs)).json() == {"sub": "5"}
        r = await client.get("/admin", headers={"X-User-Id": "5", "X-User-Roles": "user"})
        assert r.status_code == 403
        assert (await client.get("/admin")).status_code == 401
    # the same headers from somewhere else are not believed
    remote = httpx.ASGITransport(app=app, client=("192.0.2.10", 40000))
    async with httpx.AsyncClient(transport=remote, base_url="http://svc") as client:
        assert (await client.get("/admin", headers=hdrs)).status_code == 401
