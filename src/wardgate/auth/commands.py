"""CLI: `wardgate token inspect TOKEN [--config FILE --route NAME --method M --path P]`.

Prints the (unverified) header and claims, then, given a gateway config, runs the route's real
auth filter (key loading included) and says whether the gateway would accept the request, and
why not. Pass `-` as TOKEN to read it from stdin and keep it out of shell history.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from wardgate.auth import compact
from wardgate.auth.errors import Rejected
from wardgate.auth.identity import set_sub_hash_key
from wardgate.auth.registry import ProviderRegistry
from wardgate.auth.route import compile_route_auth
from wardgate.auth.sources import KeyLoadError
from wardgate.config import ConfigError, load_gateway
from wardgate.config.gateway import GatewayConfig, RouteConfig
from wardgate.errors import GatewayError


def _when(value: Any, now: float) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value!r} (not a NumericDate)"
    try:
        stamp = datetime.fromtimestamp(value, UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        stamp = "out of range"
    delta = value - now
    rel = f"in {delta:.0f}s" if delta >= 0 else f"{-delta:.0f}s ago"
    return f"{value} ({stamp}, {rel})"


def _match(route: RouteConfig, method: str, path: str) -> dict[str, str] | None:
    """Captured params if the route's match covers method and path (host is not considered)."""
    m = route.match
    if m.methods is not None and method not in m.methods:
        return None
    pattern = m.path or m.path_prefix or "/"
    want, have = pattern.rstrip("/").split("/"), path.rstrip("/").split("/")
    if len(have) < len(want) or (m.path is not None and len(have) != len(want)):
        return None
    params: dict[str, str] = {}
    for w, h in zip(want, have, strict=False):
        if w.startswith("{") and w.endswith("}"):
            params[w[1:-1]] = h
        elif w != h:
            return None
    return params


def _pick(cfg: GatewayConfig, name: str | None, method: str, path: str
          ) -> tuple[RouteConfig, dict[str, str]] | None:
    for r in cfg.routes:
        if name is not None and r.name != name:
            continue
        params = _match(r, method, path)
        if params is not None or name is not None:
            return r, params or {}
    return None


async def _judge(cfg: GatewayConfig, route: RouteConfig, params: dict[str, str], token: bytes,
                 method: str, path: str) -> int:
    from wardgate.gateway.request import Request

    registry = ProviderRegistry.from_config(cfg.providers)
    try:
        await registry.start()
    except KeyLoadError as exc:
        print(f"keys: {exc}")
        return 2
    try:
        auth = compile_route_auth(route, registry)
        if auth is None:
            print(f"route {route.name}: auth: none (public); the token is not looked at")
            return 0
        req = Request()
        req.method, req.path, req.params = method, path, params
        req.headers = [(b"authorization", b"Bearer " + token)]
        try:
            await auth.authenticate(req)
        except GatewayError as err:
            print(f"REJECT {err.status} ({req.auth_outcome}) on route {route.name}")
            for name, value in err.extra_headers():
                print(f"  {name.decode()}: {value.decode()}")
            return 1
        auth.forward(req)
        ident = req.identity
        key = cfg.access_log.sub_hash_key()
        if key is not None:
            set_sub_hash_key(key)  # the gateway's own: the hash its access log shows
            sub = f"sub hash {ident.sub_hash}"
        else:
            sub = "sub hash keyed per gateway run (set access_log.sub_hash_key_env to compare)"
        print(f"ACCEPT on route {route.name}: provider {ident.provider}, {sub}")
        for name, value in req.headers:
            print(f"  upstream header {name.decode()}: {value.decode(errors='replace')}")
        return 0
    finally:
        await registry.stop()


def _inspect(args: argparse.Namespace) -> int:
    raw = sys.stdin.readline().strip() if args.token == "-" else args.token
    token = raw.encode("ascii", errors="replace")
    now = time.time()
    try:
        parts = compact.split(token, 64 * 1024)
        header, claims = parts.header, parts.claims
    except Rejected as exc:
        print(f"not a well-formed compact JWS: {exc.reason}")
        return 1
    print("header (unverified):")
    print(json.dumps(header, indent=2, sort_keys=True))
    print("claims (unverified):")
    print(json.dumps(claims, indent=2, sort_keys=True))
    for c in ("iat", "nbf", "exp"):
        if c in claims:
            print(f"{c}: {_when(claims[c], now)}")
    if args.config is None:
        print("give --config (and --route or --path) to check it against a gateway")
        return 0
    try:
        cfg = load_gateway(args.config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 2
    picked = _pick(cfg, args.route, args.method.upper(), args.path)
    if picked is None:
        print(f"no route matches {args.method.upper()} {args.path}"
              + (f" named {args.route}" if args.route else ""))
        return 2
    route, params = picked
    return asyncio.run(_judge(cfg, route, params, token, args.method.upper(), args.path))


def register(sub: argparse._SubParsersAction) -> None:
    token = sub.add_parser("token", help="token tools")
    tsub = token.add_subparsers(dest="token_command", metavar="COMMAND")
    tsub.required = True
    p = tsub.add_parser("inspect", help="decode a token and say whether a route would accept it")
    p.add_argument("token", help="the JWT, or - to read it from stdin")
    p.add_argument("--config", "-c", help="gateway config file")
    p.add_argument("--route", help="route name (default: the first route matching --path)")
    p.add_argument("--method", default="GET")
    p.add_argument("--path", default="/")
    p.set_defaults(func=_inspect)
