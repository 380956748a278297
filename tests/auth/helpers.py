"""Token minting and environments for the auth tests.

Tokens are minted with PyJWT's algorithm objects (an implementation independent of joserfc, our
verifier) over hand-built header/payload bytes, so a test can produce any malformed shape.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jwt.algorithms import get_default_algorithms

from wardgate.auth import ProviderRegistry, compile_route_auth
from wardgate.auth.identity import Identity
from wardgate.auth.route import RouteAuth
from wardgate.config.auth import ProviderConfig
from wardgate.config.gateway import RouteConfig
from wardgate.gateway.request import Request

ISS = "https://issuer.example"
AUD = "api"
NOW = 1_800_000_000.0
ALGS = get_default_algorithms()


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def enc(obj: Any) -> bytes:
    if isinstance(obj, bytes):
        return obj
    return json.dumps(obj, separators=(",", ":")).encode()


def claims(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": ISS, "aud": AUD, "sub": "alice", "iat": int(NOW) - 10,
                            "exp": int(NOW) + 300, "jti": uuid.uuid4().hex}
    for k, v in over.items():
        if v is DROP:
            base.pop(k, None)
        else:
            base[k] = v
    return base


DROP = object()


def sign(header: Any, payload: Any, key: Any, alg: str | None = None) -> bytes:
    """Compact JWS over exactly these header/payload bytes, signed by PyJWT's implementation."""
    hdr = enc(header)
    alg = alg or json.loads(hdr)["alg"]
    signing_input = b64(hdr) + b"." + b64(enc(payload))
    algo = ALGS[alg]
    sig = algo.sign(signing_input, algo.prepare_key(key))
    return signing_input + b"." + b64(sig)


def public_jwk(private_key: Any, alg: str, kid: str | None) -> dict[str, Any]:
    algo = ALGS[alg]
    jwk = algo.to_jwk(private_key.public_key(), as_dict=True)
    jwk["alg"] = alg
    if kid is not None:
        jwk["kid"] = kid
    else:
        jwk.pop("kid", None)
    return jwk


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def provider_config(tmp: Path, jwks: dict[str, Any] | None = None, **over: Any) -> ProviderConfig:
    data: dict[str, Any] = {"name": "main", "issuer": ISS, "audiences": [AUD],
                            "algorithms": ["RS256", "ES256", "EdDSA"]}
    if jwks is not None:
        path = tmp / f"jwks-{uuid.uuid4().hex}.json"
        path.write_text(json.dumps(jwks))
        data["jwks_file"] = str(path)
    data.update(over)
    return ProviderConfig.model_validate(data)


def route_config(auth: Any, path: str = "/orders", **over: Any) -> RouteConfig:
    data: dict[str, Any] = {"name": "r", "upstream": "u", "match": {"path_prefix": path},
                            "auth": auth}
    data.update(over)
    return RouteConfig.model_validate(data)


def request(method: str = "GET", path: str = "/orders", token: bytes | None = None,
            headers: list[tuple[bytes, bytes]] | None = None, query: bytes = b"",
            params: dict[str, str] | None = None) -> Request:
    req = Request()
    req.method = method
    req.path = path
    req.query = query
    req.params = params or {}
    req.headers = list(headers or [])
    if token is not None:
        req.headers.append((b"authorization", b"Bearer " + token))
    return req


@dataclass
class Env:
    registry: ProviderRegistry
    clock: Clock
    routes: dict[str, RouteAuth] = field(default_factory=dict)

    def verify(self, token: bytes, provider: str = "main") -> Identity:
        """Verify directly through the provider (no cache, no route)."""
        from wardgate.auth.verifier import TokenVerifier

        v = TokenVerifier([self.registry.verifier(provider)], 8192)
        return v.verify(token)

    def route(self, auth: Any, path: str = "/orders", **over: Any) -> RouteAuth:
        ra = compile_route_auth(route_config(auth, path, **over), self.registry)
        assert ra is not None
        return ra


async def make_env(providers: list[ProviderConfig], clock: Clock | None = None) -> Env:
    clock = clock or Clock()
    reg = ProviderRegistry.from_config(providers, clock=clock)
    await reg.start()
    return Env(reg, clock)
