"""The token issuer's configuration (`wardgate issuer --config FILE`; keys in docs/issuer.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator

from wardgate.config.common import ByteSize, HostPort, Strict, resolve_path
from wardgate.config.limits import StateConfig
from wardgate.config.logindetect import IssuerDetection
from wardgate.config.revocation import IssuerRevocations

Algorithm = Literal["RS256", "ES256", "EdDSA"]


class KeysConfig(Strict):
    dir: str = "issuer-keys"
    algorithm: Algorithm = "RS256"
    # Rotation publishes the next key this long before it signs (JWKS caches must see it first).
    rotation_lead_s: int = Field(3600, ge=0)
    # How often a running issuer re-reads the key table (picks up `wardgate keys rotate`).
    reload_interval_s: float = Field(30.0, gt=0)

    @field_validator("dir")
    @classmethod
    def _resolve(cls, v: str, info: ValidationInfo) -> str:
        return resolve_path(v, info)


class TokensConfig(Strict):
    access_ttl_s: int = Field(600, ge=10, le=86_400)
    id_token_ttl_s: int = Field(600, ge=10, le=86_400)
    refresh_idle_s: int = Field(14 * 86_400, ge=60)
    refresh_absolute_s: int = Field(30 * 86_400, ge=60)
    auth_code_ttl_s: int = Field(60, ge=5, le=600)
    session_ttl_s: int = Field(12 * 3600, ge=60)
    # Audience of tokens issued by POST /login (first-party web/API clients).
    default_audience: str = "api"
    # client_id claim of tokens issued by POST /login.
    login_client_id: str = Field("wardgate-login", pattern=r"^[A-Za-z0-9._~-]*[A-Za-z._~-][A-Za-z0-9._~-]*$",
                                 max_length=100)


class PasswordHashConfig(Strict):
    # argon2id (RFC 9106 §4 second recommended option is t=3, m=64 MiB, p=4).
    time_cost: int = Field(3, ge=1, le=20)
    memory_cost_kib: int = Field(65_536, ge=1024, le=4 * 1024 * 1024)
    parallelism: int = Field(4, ge=1, le=64)


class BrowserConfig(Strict):
    enabled: bool = True
    same_site: Literal["Strict", "Lax", "None"] = "Lax"


class ThrottleConfig(Strict):
    # Failures allowed before any delay; then the delay doubles per failure up to max_delay_s.
    free_failures_per_user: int = Field(3, ge=0)
    free_failures_per_address: int = Field(20, ge=0)
    base_delay_s: float = Field(1.0, ge=0)
    max_delay_s: float = Field(300.0, ge=0)
    # A key with no failure for this long is forgotten (so no lockout can be held forever).
    forget_after_s: float = Field(3600.0, gt=0)


class IssuerDpopConfig(Strict):
    """DPoP proofs (RFC 9449) at the token endpoint and /login."""

    algorithms: list[str] = Field(["ES256", "EdDSA", "RS256", "PS256"], min_length=1)
    max_age_s: int = Field(60, ge=1, le=3600, description="oldest acceptable proof iat")
    max_future_s: int = Field(5, ge=0, le=300, description="clock skew allowed for iat")
    require_nonce: bool = Field(False, description="proofs must carry a DPoP-Nonce value")
    nonce_lifetime_s: int = Field(300, ge=10, le=86_400)

    @field_validator("algorithms")
    @classmethod
    def _algs(cls, v: list[str]) -> list[str]:
        from wardgate.config.auth import ASYMMETRIC_ALGS

        bad = [a for a in v if a not in ASYMMETRIC_ALGS]
        if bad:
            raise ValueError(f"unsupported DPoP algorithm(s) {bad}; supported: "
                             f"{sorted(ASYMMETRIC_ALGS)}")
        return list(dict.fromkeys(v))


class LimitsConfig(Strict):
    max_body_bytes: ByteSize = Field(64 * 1024, ge=1024)


class ExchangeRule(Strict):
    """RFC 8693 policy for one client: what it may present and what it may get back."""

    # The confidential client that calls POST /token with the token-exchange grant.
    client: str = Field(min_length=1, max_length=100)
    # `aud` values of subject tokens it may exchange (normally its own inbound audience).
    subject_audiences: list[str] = Field(min_length=1)
    # Audiences it may request; the first is the default when the request names none.
    audiences: list[str] = Field(min_length=1)
    # Upper bound on the new token's scopes; the subject token's scopes bound them too.
    scopes: list[str] = Field(min_length=1)
    # Longest delegation chain (`act` nesting) a new token may carry.
    max_chain: int = Field(4, ge=1, le=16)

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: list[str]) -> list[str]:
        for s in v:
            if not s or any(c.isspace() or c in '"\\' for c in s):
                raise ValueError(f"bad scope {s!r} (RFC 6749 §3.3)")
        return v


class IssuerConfig(Strict):
    listen: HostPort = "127.0.0.1:9000"
    # The `iss` value; also the base of every URL in the discovery document.
    issuer: str = "http://127.0.0.1:9000"
    database_url: str = "sqlite:///issuer.db"
    keys: KeysConfig = KeysConfig()
    tokens: TokensConfig = TokensConfig()
    password_hash: PasswordHashConfig = PasswordHashConfig()
    browser: BrowserConfig = BrowserConfig()
    throttle: ThrottleConfig = ThrottleConfig()
    limits: LimitsConfig = LimitsConfig()
    dpop: IssuerDpopConfig = IssuerDpopConfig()
    # Role name -> scopes granted to users holding that role (synced to the database at start).
    roles: dict[str, list[str]] = {}
    # Token exchange (RFC 8693): one rule per client allowed to exchange; none by default.
    token_exchange: list[ExchangeRule] = []

    @field_validator("token_exchange")
    @classmethod
    def _one_rule_per_client(cls, v: list[ExchangeRule]) -> list[ExchangeRule]:
        seen: set[str] = set()
        for r in v:
            if r.client in seen:
                raise ValueError(f"client {r.client!r} has two token_exchange rules")
            seen.add(r.client)
        return v
    # Redis (optional): revocation events are relayed to a stream every gateway reads
    state: StateConfig = StateConfig()
    # GET /revocations (the gateways' polling feed) and the relay
    revocations: IssuerRevocations = IssuerRevocations()
    # Login abuse detection (credential stuffing, password spraying); off without the section
    detection: IssuerDetection | None = None

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, v: str) -> str:
        parts = urlsplit(v)
        # OIDC Discovery §3 / RFC 8414 §2: https URL without query or fragment (http for loopback).
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("issuer must be an http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("issuer must not have a query or fragment")
        return v.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, v: str, info: ValidationInfo) -> str:
        if v.startswith("sqlite:///"):
            path = v.removeprefix("sqlite:///")
            if path and path != ":memory:" and not Path(path).is_absolute():
                path = resolve_path(path, info)
            return "sqlite:///" + path
        if v.startswith(("postgresql://", "postgres://")):
            return v
        raise ValueError("database_url must start with sqlite:/// or postgresql://")

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, scopes in v.items():
            if not name or any(c.isspace() for c in name):
                raise ValueError(f"role {name!r}: no whitespace allowed")
            for s in scopes:
                if not s or any(c.isspace() or c in '"\\' for c in s):
                    raise ValueError(f"role {name!r}: bad scope {s!r} (RFC 6749 §3.3)")
        return v


def load_issuer(path: str | Path) -> IssuerConfig:
    from wardgate.config.loader import load_file

    return load_file(IssuerConfig, path)
