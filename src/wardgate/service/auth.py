"""`ServiceAuth`: how a service learns who is calling, in one of two modes.

- `ServiceAuth.zero_trust(...)`: verify the original JWT against the issuer's JWKS. The
  service trusts no network hop; the gateway route must say `forward_token: true`, because the
  gateway drops the token otherwise.
- `ServiceAuth.trust_gateway(...)`: read the identity headers the gateway added
  (`claims_to_headers` / `payload_header`); no token needed, the gateway already verified it.

`authenticate(auth, headers, peer=...)` is the framework-agnostic entry point; the ASGI
middleware calls the same method.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from wardgate.auth.identity import Identity
from wardgate.config.auth import ProviderConfig, TokenSources
from wardgate.service.headers import HeaderInput, normalize
from wardgate.service.trusted import GatewayHeaders
from wardgate.service.zerotrust import TokenAuthenticator


class ServiceAuth:
    def __init__(self, *, tokens: TokenAuthenticator | None = None,
                 gateway: GatewayHeaders | None = None) -> None:
        if (tokens is None) == (gateway is None):
            raise ValueError("choose exactly one mode: zero_trust(...) or trust_gateway(...)")
        self.tokens = tokens
        self.gateway = gateway

    @classmethod
    def zero_trust(cls, issuer: str, audience: str | list[str], *, jwks_uri: str | None = None,
                   algorithms: list[str] | None = None, clock: Callable[[], float] = time.time,
                   **provider: Any) -> ServiceAuth:
        """Verify tokens of `issuer` for `audience`. Keys come from `jwks_uri`, or from the
        issuer's discovery document when it is not given. Extra keyword arguments are
        ProviderConfig fields (leeway_s, typ, required_claims, roles_claim, refresh, ...)."""
        token = provider.pop("token", None)
        fields: dict[str, Any] = {
            "name": provider.pop("name", "issuer"), "issuer": issuer,
            "audiences": [audience] if isinstance(audience, str) else list(audience), **provider}
        if algorithms is not None:
            fields["algorithms"] = algorithms
        if jwks_uri is not None:
            fields["jwks_uri"] = jwks_uri
        else:
            fields["discovery"] = True
        cfg = ProviderConfig.model_validate(fields)
        sources = TokenSources.model_validate(token) if isinstance(token, dict) else token
        return cls(tokens=TokenAuthenticator(cfg, token=sources, clock=clock))

    @classmethod
    def from_provider(cls, provider: ProviderConfig, *,
                      clock: Callable[[], float] = time.time) -> ServiceAuth:
        """Zero trust with a provider block as written in the gateway's YAML."""
        return cls(tokens=TokenAuthenticator(provider, clock=clock))

    @classmethod
    def trust_gateway(cls, headers: GatewayHeaders | None = None, **names: Any) -> ServiceAuth:
        """Read the gateway's identity headers (names as in the route's claims_to_headers)."""
        if headers is not None and names:
            raise ValueError("pass either a GatewayHeaders or header names, not both")
        if headers is None:
            if "trusted_peers" in names:
                names["trusted_peers"] = tuple(names["trusted_peers"])
            headers = GatewayHeaders(**names)
        return cls(gateway=headers)

    @property
    def mode(self) -> str:
        return "zero_trust" if self.tokens is not None else "trust_gateway"

    async def start(self) -> None:
        if self.tokens is not None:
            await self.tokens.start()

    async def stop(self) -> None:
        if self.tokens is not None:
            await self.tokens.stop()

    def ready(self) -> bool:
        return self.tokens.ready() if self.tokens is not None else True

    async def authenticate(self, headers: list[tuple[bytes, bytes]], *, peer: str | None = None,
                           query: bytes = b"") -> Identity:
        """The caller's Identity, or raise MissingToken / InvalidRequest / InvalidToken /
        ServiceUnavailable (render them with wardgate.service.render)."""
        if self.tokens is not None:
            return await self.tokens.authenticate(headers, query)
        assert self.gateway is not None
        return self.gateway.identity(headers, peer)


async def authenticate(auth: ServiceAuth, headers: HeaderInput, *, peer: str | None = None,
                       query: str | bytes = b"") -> Identity:
    """Framework-agnostic: give it the request's headers (a dict or a list of pairs, str or
    bytes), the peer address (for trust_gateway) and, if the route allows it, the raw query."""
    q = query.encode("latin-1", "replace") if isinstance(query, str) else query
    return await auth.authenticate(normalize(headers), peer=peer, query=q)
