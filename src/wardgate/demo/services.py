"""The demo's two example services, each a small FastAPI app guarded by wardgate.service.

- orders (zero trust): verifies the caller's JWT itself against the issuer's JWKS, with the
  gateway's provider settings; the gateway route forwards the token (`forward_token: true`).
  GET /orders for any signed-in user, POST /orders needs scope orders:write.
- reports (trusted gateway): reads the identity headers the gateway's route adds
  (`claims_to_headers`), and checks role admin again (defence in depth: the gateway already did).
  GET /whoami (any caller the gateway let through) answers who the headers say is calling: the
  gateway's `dpop` route (DPoP required) ends there.

Run one: python -m wardgate.demo.services orders --config .wardgate/gateway.yaml --port 9101
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from wardgate.auth.identity import Identity
from wardgate.config import load_gateway
from wardgate.config.gateway import GatewayConfig, RouteConfig
from wardgate.service import (
    ServiceAuth,
    WardgateMiddleware,
    authenticated,
    require_roles,
    require_scopes,
)

# Built once: each is a FastAPI dependency that checks what WardgateMiddleware verified.
SignedIn = Annotated[Identity, Depends(authenticated())]
CanWriteOrders = Annotated[Identity, Depends(require_scopes("orders:write"))]
Admin = Annotated[Identity, Depends(require_roles("admin"))]
CanReadReports = Annotated[Identity, Depends(require_scopes("reports:read"))]


def _who(ident: Identity) -> dict[str, Any]:
    return {"sub": ident.sub, "roles": sorted(ident.roles), "scopes": sorted(ident.scopes)}


def _bare_app(title: str) -> FastAPI:
    # No interactive docs: the demo's surface is exactly the routes the gateway exposes.
    return FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)


def orders_app(auth: ServiceAuth) -> FastAPI:
    app = _bare_app("orders (wardgate demo)")
    orders: dict[str, list[dict[str, Any]]] = {}  # per user (sub); lives as long as the process

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        # ready only once the issuer's keys are loaded: before that every call would be a 503
        ok = auth.ready()
        return JSONResponse({"ok": ok, "mode": auth.mode}, status_code=200 if ok else 503)

    @app.get("/orders")
    async def list_orders(who: SignedIn) -> dict[str, Any]:
        mine = orders.setdefault(who.sub or "", [{"id": 1, "item": "espresso beans"}])
        return {"service": "orders", "verified_by": auth.mode, "caller": _who(who),
                "orders": mine}

    @app.post("/orders", status_code=201)
    async def create_order(request: Request, who: CanWriteOrders) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        item = body.get("item") if isinstance(body, dict) else None
        mine = orders.setdefault(who.sub or "", [{"id": 1, "item": "espresso beans"}])
        order = {"id": len(mine) + 1, "item": str(item or "green tea")[:100]}
        mine.append(order)
        return {"service": "orders", "caller": _who(who), "created": order}

    app.add_middleware(WardgateMiddleware, auth=auth, realm="orders")
    return app


def reports_app(auth: ServiceAuth) -> FastAPI:
    app = _bare_app("reports (wardgate demo)")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "mode": auth.mode}

    @app.get("/whoami")
    async def whoami(who: SignedIn) -> dict[str, Any]:
        return {"service": "reports", "verified_by": auth.mode, "caller": _who(who)}

    @app.get("/reports")
    async def reports(who: Admin, _scoped: CanReadReports) -> dict[str, Any]:
        return {"service": "reports", "verified_by": auth.mode, "caller": _who(who),
                "reports": [{"name": "revenue", "value": 1234.5},
                            {"name": "orders_today", "value": 42}]}

    app.add_middleware(WardgateMiddleware, auth=auth, realm="reports")
    return app


def _route(cfg: GatewayConfig, name: str) -> RouteConfig:
    for r in cfg.routes:
        if r.name == name:
            return r
    raise ValueError(f"the gateway config has no route {name!r}")


def auth_for(cfg: GatewayConfig, service: str) -> ServiceAuth:
    """The service's settings, taken from the gateway route in front of it."""
    route = _route(cfg, service)
    if service == "orders":
        if not route.forward_token or route.auth == "none" or route.auth is None:
            raise ValueError("route 'orders' must authenticate and set forward_token: true")
        provider = next(p for p in cfg.providers if p.name == route.auth.providers[0])
        return ServiceAuth.from_provider(provider)
    by_claim = route.claims_to_headers
    if "sub" not in by_claim:
        raise ValueError(f"route {service!r} must send the sub claim in claims_to_headers")
    return ServiceAuth.trust_gateway(sub=by_claim["sub"], roles=by_claim.get("roles"),
                                     scope=by_claim.get("scope"))


APPS = {"orders": orders_app, "reports": reports_app}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wardgate.demo.services")
    parser.add_argument("service", choices=sorted(APPS))
    parser.add_argument("--config", required=True, help="the demo's gateway.yaml")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = APPS[args.service](auth_for(load_gateway(args.config), args.service))
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="info",
                            server_header=False)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
