"""Configuration of token providers and per-route auth policies.

Owned by the JWT layer (wardgate.auth); the data plane only needs `AuthPolicy.provider_names`.
"""

from __future__ import annotations

from pydantic import Field

from wardgate.config.common import Strict


class ProviderConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    issuer: str
    audiences: list[str] = Field(min_length=1)
    algorithms: list[str] = ["RS256", "ES256", "EdDSA"]
    jwks_uri: str | None = None
    jwks_file: str | None = None
    leeway_s: int = Field(30, ge=0, le=300)


class Requirement(Strict):
    scopes: list[str] = []
    roles: list[str] = []


class AuthPolicy(Strict):
    providers: list[str] = Field(min_length=1)
    require: Requirement = Requirement()

    def provider_names(self) -> set[str]:
        return set(self.providers)
