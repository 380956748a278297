"""Helpers of the detection tests: a gateway config with detection and an admin listener,
tokens signed with a test key, requests from real loopback source addresses."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.admin.support import with_admin
from tests.support.upstream import Upstream

ISS = "http://127.0.0.1:9/issuer"


def mint(key: rsa.RSAPrivateKey, sub: str = "alice", kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISS, "aud": "api", "sub": sub, "iat": now, "nbf": now, "exp": now + 600,
            "jti": uuid.uuid4().hex, "scope": "api"}
    body.update(claims)
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid, "typ": "at+jwt"})


def gateway_config(tmp_path: Path, key: rsa.RSAPrivateKey, up: Upstream,
                   detection: dict[str, Any], *, route_detection: dict[str, Any] | None = None,
                   workers: int = 1, state: dict[str, Any] | None = None) -> dict[str, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", alg="RS256", use="sig")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    auth = {"providers": ["main"], "require": {"scopes": ["api"]}}
    api: dict[str, Any] = {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "up",
                           "auth": auth}
    if route_detection is not None:
        api["detection"] = route_detection
    cfg: dict[str, Any] = {
        "workers": workers,
        "providers": [{"name": "main", "issuer": ISS, "audiences": ["api"],
                       "jwks_file": str(tmp_path / "jwks.json")}],
        "upstreams": [{"name": "up", "targets": [up.url]}],
        "routes": [api,
                   {"name": "items", "match": {"path": "/items/{id}"}, "upstream": "up",
                    "auth": auth},
                   {"name": "public", "match": {"path_prefix": "/public"}, "upstream": "up",
                    "auth": "none"}],
        "detection": detection,
    }
    if state is not None:
        cfg["state"] = state
    return with_admin(cfg)


def call(port: int, path: str, token: str | None = None, source: str = "127.0.0.1",
         ua: str = "app/1.0", headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection from `source` (a real loopback source address)."""
    h = {"User-Agent": ua, **(headers or {})}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    c.request("GET", path, headers=h)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def until(check: Any, timeout: float = 5.0, every: float = 0.05) -> Any:
    """Poll `check()` until it returns something truthy (the detector runs every 100 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(every)
