"""Configuration of token providers and per-route auth policies (reference: docs/auth.md).

Owned by the JWT layer (wardgate.auth); the data plane only needs `AuthPolicy.provider_names`.
Every security choice is named here and never inferred from a token.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from wardgate.config.common import ByteSize, ExistingFile, Strict

RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGS = frozenset({"ES256", "ES384", "ES512"})
OKP_ALGS = frozenset({"EdDSA"})
ASYMMETRIC_ALGS = RSA_ALGS | EC_ALGS | OKP_ALGS
HMAC_ALGS = frozenset({"HS256", "HS384", "HS512"})
SUPPORTED_ALGS = ASYMMETRIC_ALGS | HMAC_ALGS
#: Never acceptable as an access token, whatever a provider lists (RFC 9449 §4.2).
FORBIDDEN_TYP = frozenset({"dpop+jwt"})

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # RFC 9110 §5.6.2 token
_CLAIM_PATH = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")


def _url_ok(url: str, allow_insecure_http: bool) -> str:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"{url!r}: expected an http(s) URL")
    if u.scheme == "http" and not allow_insecure_http and not _is_loopback(u.hostname):
        raise ValueError(f"{url!r}: plain http is only allowed to loopback hosts "
                         "(set allow_insecure_http: true to override)")
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RefreshConfig(Strict):
    """How a remote key set (jwks_uri / discovery) is fetched and kept."""

    min_interval_s: float = Field(60.0, ge=1, description="lower bound on Cache-Control max-age")
    max_interval_s: float = Field(3600.0, ge=1, description="upper bound; also the default")
    retry_s: float = Field(5.0, gt=0, description="first retry after a failure; doubles")
    unknown_kid_cooldown_s: float = Field(30.0, ge=0)
    max_stale_s: float = Field(86400.0, ge=0, description="keep last good keys this long")
    timeout_s: float = Field(5.0, gt=0)
    max_bytes: ByteSize = Field(512 * 1024, ge=1024)
    on_start_failure: Literal["degraded", "exit"] = "degraded"

    @model_validator(mode="after")
    def _bounds(self) -> RefreshConfig:
        if self.min_interval_s > self.max_interval_s:
            raise ValueError("min_interval_s must not exceed max_interval_s")
        return self


class KeyConfig(Strict):
    """An inline public key (PEM). `alg` binds it to one algorithm."""

    kid: str | None = None
    alg: str | None = None
    pem: str | None = None
    pem_file: ExistingFile | None = None

    @model_validator(mode="after")
    def _one(self) -> KeyConfig:
        if (self.pem is None) == (self.pem_file is None):
            raise ValueError("give exactly one of pem, pem_file")
        return self

    def pem_bytes(self) -> bytes:
        if self.pem is not None:
            return self.pem.encode()
        assert self.pem_file is not None
        return Path(self.pem_file).read_bytes()


class ProviderConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    issuer: str = Field(min_length=1)
    audiences: list[str] = Field(min_length=1)
    algorithms: list[str] = Field(["RS256", "ES256", "EdDSA"], min_length=1)
    # key sources: exactly one of these groups
    jwks_uri: str | None = None
    discovery: bool = False
    jwks_file: ExistingFile | None = None
    keys: list[KeyConfig] = []
    secret_env: str | None = None
    secret_file: ExistingFile | None = None
    # validation
    leeway_s: int = Field(30, ge=0, le=300)
    typ: list[str] = ["at+jwt", "JWT"]
    require_typ: bool = True
    required_claims: list[str] = ["iat", "sub"]
    max_lifetime_s: int | None = Field(86400, ge=1)
    roles_claim: str = "roles"
    min_rsa_bits: int = Field(2048, ge=2048)
    allow_insecure_http: bool = False
    refresh: RefreshConfig = RefreshConfig()

    @field_validator("algorithms")
    @classmethod
    def _algs(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in SUPPORTED_ALGS]
        if bad:
            # "none" lands here too: unsigned tokens are never acceptable (RFC 8725 §3.1)
            raise ValueError(f"unsupported algorithm(s) {bad}; supported: {sorted(SUPPORTED_ALGS)}")
        if set(v) & HMAC_ALGS and set(v) & ASYMMETRIC_ALGS:
            # RFC 8725 §2.1: key confusion; an HMAC verifier must never sit beside public keys
            raise ValueError("HS* algorithms cannot be mixed with asymmetric algorithms")
        return list(dict.fromkeys(v))

    @field_validator("typ")
    @classmethod
    def _typ(cls, v: list[str]) -> list[str]:
        out = [t.lower().removeprefix("application/") for t in v]
        if set(out) & FORBIDDEN_TYP:
            raise ValueError("dpop+jwt is a proof, never an access token (RFC 9449)")
        return out

    @field_validator("roles_claim")
    @classmethod
    def _path(cls, v: str) -> str:
        if not _CLAIM_PATH.match(v):
            raise ValueError(f"{v!r}: expected a dotted claim path such as realm_access.roles")
        return v

    @model_validator(mode="after")
    def _sources(self) -> ProviderConfig:
        sources = [s for s, on in (("jwks_uri", self.jwks_uri is not None),
                                   ("discovery", self.discovery),
                                   ("jwks_file", self.jwks_file is not None),
                                   ("keys", bool(self.keys)),
                                   ("secret_env", self.secret_env is not None),
                                   ("secret_file", self.secret_file is not None)) if on]
        if len(sources) != 1:
            raise ValueError("give exactly one key source: jwks_uri, discovery, jwks_file, keys, "
                             f"secret_env or secret_file (got {sources or 'none'})")
        hmac = bool(set(self.algorithms) & HMAC_ALGS)
        secret = sources[0] in ("secret_env", "secret_file")
        if hmac != secret:
            raise ValueError("HS* algorithms need secret_env/secret_file, and a secret needs HS* "
                             "algorithms only")
        if secret and len(self.algorithms) != 1:
            raise ValueError("a secret is bound to exactly one HS* algorithm")
        if self.jwks_uri is not None:
            _url_ok(self.jwks_uri, self.allow_insecure_http)
        if self.discovery:
            _url_ok(self.issuer, self.allow_insecure_http)
        if self.secret_env is not None and not os.environ.get(self.secret_env):
            raise ValueError(f"environment variable {self.secret_env} is unset or empty")
        if secret:
            need = {"HS256": 32, "HS384": 48, "HS512": 64}[self.algorithms[0]]
            if len(self.secret_bytes() or b"") < need:
                # RFC 7518 §3.2: an HMAC key at least as long as the hash output
                raise ValueError(f"{self.algorithms[0]} needs a secret of at least {need * 8} bits")
        for k in self.keys:
            if k.alg is not None and k.alg not in self.algorithms:
                raise ValueError(f"key alg {k.alg!r} is not in algorithms {self.algorithms}")
        return self

    def secret_bytes(self) -> bytes | None:
        if self.secret_env is not None:
            return os.environ.get(self.secret_env, "").encode()
        if self.secret_file is not None:
            return Path(self.secret_file).read_bytes().rstrip(b"\r\n")
        return None


class ClaimRule(Strict):
    """One test on a claim at a dotted path; exactly one operator."""

    model_config = Strict.model_config | {"populate_by_name": True}

    claim: str
    equals: str | int | float | bool | None = None
    in_: list[str | int | float | bool] | None = Field(None, alias="in")
    contains: str | int | float | bool | None = None
    regex: str | None = None
    exists: bool | None = None
    equals_param: str | None = None
    contains_param: str | None = None

    @field_validator("claim")
    @classmethod
    def _path(cls, v: str) -> str:
        if not _CLAIM_PATH.match(v):
            raise ValueError(f"{v!r}: expected a dotted claim path")
        return v

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"bad regex: {exc}") from None
        return v

    @model_validator(mode="after")
    def _one(self) -> ClaimRule:
        ops = [f for f in self.operators() if f in self.model_fields_set]
        if len(ops) != 1:
            raise ValueError("a claim rule needs exactly one of equals, in, contains, regex, "
                             f"exists, equals_param, contains_param (got {ops or 'none'})")
        return self

    @staticmethod
    def operators() -> tuple[str, ...]:
        return ("equals", "in_", "contains", "regex", "exists", "equals_param", "contains_param")

    def operator(self) -> tuple[str, Any]:
        for f in self.operators():
            if f in self.model_fields_set:
                return f.rstrip("_"), getattr(self, f)
        raise AssertionError("validated above")


class Requirement(Strict):
    """A node of the requirement tree. Every field present must hold (logical AND)."""

    provider: str | None = None
    scopes: list[str] = []
    roles: list[str] = []
    claims: list[ClaimRule] = []
    # A delegated token (RFC 8693 `act`) whose current actor (`act.sub`) is one of these.
    actors: list[str] = []
    any: list[Requirement] | None = Field(None, min_length=1)
    all: list[Requirement] | None = Field(None, min_length=1)
    allow_missing: bool = False

    def providers_used(self) -> set[str]:
        out = {self.provider} if self.provider else set()
        for child in (self.any or []) + (self.all or []):
            out |= child.providers_used()
        return out

    def params_used(self) -> set[str]:
        out = {p for c in self.claims for p in (c.equals_param, c.contains_param) if p}
        for child in (self.any or []) + (self.all or []):
            out |= child.params_used()
        return out


class CsrfCheck(Strict):
    """Double-submit check for cookie-authenticated requests with unsafe methods: the header
    must equal the cookie (the issuer sets both; see docs/issuer.md)."""

    cookie: str = Field("__Host-wg_csrf", pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    header: str = Field("X-CSRF-Token", pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


class TokenSources(Strict):
    """Where a route reads its token from; precedence and conflicts in docs/auth.md."""

    header: bool = True
    cookie: str | None = Field(None, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    # On by default whenever `cookie` is set: a browser attaches cookies to cross-site requests.
    csrf: CsrfCheck | None = CsrfCheck()
    query: str | None = Field(None, pattern=r"^[A-Za-z0-9._~-]+$")
    max_bytes: ByteSize = Field(8192, ge=256, le=65536)

    @model_validator(mode="after")
    def _some(self) -> TokenSources:
        if not (self.header or self.cookie or self.query):
            raise ValueError("enable at least one token source")
        return self


class DpopNonceConfig(Strict):
    """Server nonces (RFC 9449 §8): proofs must carry a recent `DPoP-Nonce` value."""

    secret_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                   description="environment variable with the nonce HMAC key "
                                   "(at least 16 bytes; give every gateway the same); unset: "
                                   "a random key per `wardgate run`")
    lifetime_s: int = Field(300, ge=10, le=86_400,
                            description="a nonce is good for one to two of these")

    @model_validator(mode="after")
    def _key(self) -> DpopNonceConfig:
        if self.secret_env is not None and len(os.environ.get(self.secret_env, "").encode()) < 16:
            raise ValueError(f"environment variable {self.secret_env} must hold at least 16 bytes")
        return self


class DpopConfig(Strict):
    """How DPoP proofs (RFC 9449) are checked, for every route (`dpop:` at the top level)."""

    algorithms: list[str] = Field(["ES256", "EdDSA", "RS256", "PS256"], min_length=1,
                                  description="proof algorithms accepted (asymmetric only)")
    max_age_s: int = Field(60, ge=1, le=3600, description="oldest acceptable proof iat")
    max_future_s: int = Field(5, ge=0, le=300, description="clock skew allowed for iat")
    max_proof_bytes: ByteSize = Field(4096, ge=512, le=16384)
    replay_cache_entries: int = Field(500_000, ge=1000, le=50_000_000,
                                      description="proofs remembered per worker")
    on_store_error: Literal["local", "deny"] = Field(
        "local", description="with state.redis_url, when Redis fails: rely on this worker's "
        "replay cache (local) or refuse the request with 503 (deny)")
    nonce: DpopNonceConfig | None = None
    min_rsa_bits: int = Field(2048, ge=2048)

    @field_validator("algorithms")
    @classmethod
    def _algs(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in ASYMMETRIC_ALGS]
        if bad:
            # RFC 9449 §4.3 step 5: "none" and symmetric (MAC) algorithms are never valid
            raise ValueError(f"unsupported DPoP algorithm(s) {bad}; supported: "
                             f"{sorted(ASYMMETRIC_ALGS)}")
        return list(dict.fromkeys(v))


class AuthPolicy(Strict):
    providers: list[str] = Field(min_length=1)
    # RFC 9449: absent, a DPoP-bound token is accepted only with a valid proof and unbound
    # tokens as Bearer; `allowed` also advertises DPoP in challenges; `required` refuses Bearer
    dpop: Literal["required", "allowed"] | None = None
    require: Requirement = Requirement()
    methods: dict[str, Requirement] = {}
    token: TokenSources = TokenSources()
    payload_header: str | None = None
    # while the revocation feed is stale: allow (serve on the state held) or deny (503);
    # None: the gateway's revocation.on_feed_error
    on_feed_error: Literal["allow", "deny"] | None = None

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: dict[str, Requirement]) -> dict[str, Requirement]:
        from wardgate.config.gateway import METHODS

        out = {m.upper(): r for m, r in v.items()}
        bad = [m for m in out if m not in METHODS]
        if bad:
            raise ValueError(f"unknown method(s) {bad}")
        return out

    @field_validator("payload_header")
    @classmethod
    def _hdr(cls, v: str | None) -> str | None:
        if v is not None and not _HEADER_NAME.match(v):
            raise ValueError(f"{v!r}: not a valid header name")
        return v

    @model_validator(mode="after")
    def _tree(self) -> AuthPolicy:
        used = self.require.providers_used()
        for r in self.methods.values():
            used |= r.providers_used()
        extra = used - set(self.providers)
        if extra:
            raise ValueError(f"requirement names provider(s) {sorted(extra)} not in providers")
        return self

    def provider_names(self) -> set[str]:
        return set(self.providers)

    def params_used(self) -> set[str]:
        out = self.require.params_used()
        for r in self.methods.values():
            out |= r.params_used()
        return out
