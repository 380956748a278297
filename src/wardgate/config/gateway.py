"""The gateway's configuration (YAML contract in docs/configuration.md)."""

from __future__ import annotations

import os
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from wardgate.config.auth import AuthPolicy, DpopConfig, ProviderConfig
from wardgate.config.common import ByteSize, ExistingFile, HostPort, NetworkList, Strict
from wardgate.config.detect import DetectionConfig, RouteDetection
from wardgate.config.limits import RateLimitConfig, StateConfig
from wardgate.config.revocation import RevocationConfig
from wardgate.config.tracing import TracingConfig

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class TlsConfig(Strict):
    cert: ExistingFile
    key: ExistingFile
    handshake_timeout_s: float = Field(10.0, gt=0)


class AdminConfig(Strict):
    """The admin listener (metrics, admin API, dashboard). It runs when the config has an
    `admin:` section; without one nothing listens and no metrics are kept."""

    listen: HostPort = "127.0.0.1:8081"
    token_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                  description="environment variable holding the admin token")
    token_file: ExistingFile | None = Field(None, description="file holding the admin token")
    metrics: bool = Field(True, description="keep request metrics (GET /metrics)")
    metrics_auth: bool = Field(False, description="GET /metrics needs the admin token too")

    @model_validator(mode="after")
    def _one_token_source(self) -> AdminConfig:
        if self.token_env is not None and self.token_file is not None:
            raise ValueError("set token_env or token_file, not both")
        return self

    def token(self) -> bytes | None:
        """The configured admin token (stripped of surrounding whitespace), None if unset."""
        raw: str | None = None
        if self.token_env is not None:
            raw = os.environ.get(self.token_env)
        elif self.token_file is not None:
            with open(self.token_file, encoding="utf-8") as f:
                raw = f.read()
        raw = (raw or "").strip()
        return raw.encode() if raw else None


class Limits(Strict):
    max_header_bytes: ByteSize = Field(16 * 1024, ge=1024, description="request line + headers")
    max_headers: int = Field(100, ge=8, le=10_000)
    max_url_bytes: ByteSize = Field(8 * 1024, ge=256)
    max_body_bytes: ByteSize = Field(10 * 1024 * 1024, ge=0)
    max_pipelined: int = Field(32, ge=1, le=1024)
    token_cache_entries: int = Field(10_000, ge=0, le=1_000_000,
                                     description="verified-token cache size per worker (0: off)")
    max_connections: int = Field(16_384, ge=1, le=1_000_000,
                                 description="open client connections per worker; beyond: 503")


class Timeouts(Strict):
    header_s: float = Field(10.0, gt=0, description="whole request head must arrive in this time")
    body_s: float = Field(30.0, gt=0, description="max gap between request body reads")
    keepalive_s: float = Field(60.0, gt=0, description="idle client connection")
    drain_s: float = Field(20.0, ge=0, description="SIGTERM: in-flight requests get this long")
    watchdog_s: float = Field(10.0, ge=0, description="a worker whose event loop has not "
                              "checked in for this long is killed and restarted; 0: off")


SUB_HASH_KEY_MIN_BYTES = 16


class AccessLogConfig(Strict):
    enabled: bool = True
    path: str = "-"  # "-" is stdout
    include_query: bool = False
    sub_hash_key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="environment variable holding the HMAC key of the logged sub_hash; unset: "
                    "a random key per `wardgate run` (hashes comparable within one run)")

    @model_validator(mode="after")
    def _key_present(self) -> AccessLogConfig:
        name = self.sub_hash_key_env
        if name is not None and len(os.environ.get(name, "").encode()) < SUB_HASH_KEY_MIN_BYTES:
            raise ValueError(f"environment variable {name} must hold at least "
                             f"{SUB_HASH_KEY_MIN_BYTES} bytes (the sub_hash key)")
        return self

    def sub_hash_key(self) -> bytes | None:
        """The configured key, None when each `wardgate run` makes its own."""
        name = self.sub_hash_key_env
        return os.environ[name].encode() if name is not None else None


class TargetConfig(Strict):
    url: str
    weight: int = Field(1, ge=1, le=1000)


class PoolConfig(Strict):
    max_size: int = Field(128, ge=1, le=100_000)
    idle_timeout_s: float = Field(60.0, gt=0)


class UpstreamTimeouts(Strict):
    connect_s: float = Field(5.0, gt=0)
    read_s: float = Field(30.0, gt=0, description="max wait for response head / between reads")


class ActiveHealthConfig(Strict):
    path: str = Field(pattern=r"^/[\x21-\x7e]*$", description="probed with GET on every target")
    interval_s: float = Field(5.0, gt=0)
    timeout_s: float = Field(2.0, gt=0, description="connect + answer of one probe")
    healthy_threshold: int = Field(2, ge=1, description="passes in a row to take a target back")
    unhealthy_threshold: int = Field(3, ge=1, description="failures in a row to take it out")
    expect_status: list[int] = Field([200, 204], min_length=1)

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, v: list[int]) -> list[int]:
        for code in v:
            if not 100 <= code <= 599:
                raise ValueError(f"{code}: not an HTTP status")
        return v

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> ActiveHealthConfig:
        if self.timeout_s > self.interval_s:
            raise ValueError("timeout_s must not exceed interval_s")
        return self


class ErrorRateConfig(Strict):
    threshold: float = Field(0.5, gt=0, le=1, description="failed share of requests that ejects")
    window_s: float = Field(10.0, gt=0, description="sliding window the rate is taken over")
    min_requests: int = Field(20, ge=1, description="no verdict on fewer requests in the window")


class HealthConfig(Strict):
    max_failures: int = Field(3, ge=1, description="consecutive failures before ejection")
    ejection_s: float = Field(10.0, gt=0, description="first ejection; doubles on repeats")
    max_ejection_s: float = Field(300.0, gt=0)
    failure_statuses: list[int] = Field([502, 503, 504], description="response statuses that "
                                        "count as failures for ejection")
    error_rate: ErrorRateConfig | None = None
    slow_start_s: float = Field(0.0, ge=0, description="a returning target's share ramps up "
                                "over this long; 0: off")
    active: ActiveHealthConfig | None = None

    @field_validator("failure_statuses")
    @classmethod
    def _fail_statuses(cls, v: list[int]) -> list[int]:
        for code in v:
            if not 500 <= code <= 599:
                raise ValueError(f"{code}: only 5xx statuses can count as failures")
        return v


class RetryBudgetConfig(Strict):
    percent: float = Field(20.0, ge=0, le=100, description="retries in flight, as a percentage "
                           "of requests in flight")
    min_retries: int = Field(3, ge=0, description="retries in flight always allowed")


class CircuitBreakerConfig(Strict):
    max_requests: int = Field(1024, ge=1, le=1_000_000,
                              description="requests in flight per worker; beyond: 503")
    max_pending: int = Field(1024, ge=1, le=1_000_000, description="requests waiting for a new "
                             "upstream connection per worker; beyond: 503")
    retry_budget: RetryBudgetConfig = RetryBudgetConfig()
    retry_after_s: int = Field(1, ge=1, le=3600, description="Retry-After of a breaker's 503")


class UpstreamTls(Strict):
    verify: bool = True
    ca_file: ExistingFile | None = None
    server_name: str | None = None


class UpstreamConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    targets: list[TargetConfig] = Field(min_length=1)
    balancer: Literal["round_robin", "least_conn", "hash"] = "round_robin"
    hash_key: str | None = Field(None, pattern=r"^(header:[A-Za-z0-9!#$%&'*+.^_`|~-]+"
                                 r"|claim:[A-Za-z0-9_.:-]+|client_ip)$",
                                 description="balancer: hash keys on header:NAME, claim:NAME "
                                 "or client_ip")
    pool: PoolConfig = PoolConfig()
    timeouts: UpstreamTimeouts = UpstreamTimeouts()
    health: HealthConfig = HealthConfig()
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    tls: UpstreamTls = UpstreamTls()

    @model_validator(mode="after")
    def _hash_key(self) -> UpstreamConfig:
        if (self.balancer == "hash") != (self.hash_key is not None):
            raise ValueError("balancer: hash needs hash_key, and hash_key needs balancer: hash")
        return self

    @field_validator("targets", mode="before")
    @classmethod
    def _targets(cls, v: object) -> object:
        if isinstance(v, list):
            return [{"url": t} if isinstance(t, str) else t for t in v]
        return v

    @field_validator("targets")
    @classmethod
    def _target_urls(cls, v: list[TargetConfig]) -> list[TargetConfig]:
        for t in v:
            u = urlsplit(t.url)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise ValueError(f"{t.url!r}: targets are http:// or https:// URLs")
            if u.path not in ("", "/") or u.query or u.fragment or u.username:
                raise ValueError(f"{t.url!r}: a target is scheme://host:port only")
            u.port  # noqa: B018 - raises ValueError on a bad port
        return v


class MatchConfig(Strict):
    host: str | None = None
    path: str | None = None
    path_prefix: str | None = None
    methods: list[str] | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.lower()
        bare = v[2:] if v.startswith("*.") else v
        if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d+)?", bare):
            raise ValueError(f"{v!r}: expected a host name or *.domain")
        return v

    @field_validator("path", "path_prefix")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not v.startswith("/"):
            raise ValueError("must start with '/'")
        for seg in v.split("/")[1:]:
            if "{" in seg or "}" in seg:
                if not _PARAM.match(seg):
                    raise ValueError(f"{seg!r}: a parameter is a whole segment like {{name}}")
        return v

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        out = [m.upper() for m in v]
        bad = [m for m in out if m not in METHODS]
        if bad:
            raise ValueError(f"unknown method(s) {bad}; allowed: {list(METHODS)}")
        return out

    @model_validator(mode="after")
    def _one_path(self) -> MatchConfig:
        if self.path is not None and self.path_prefix is not None:
            raise ValueError("use either path (exact) or path_prefix, not both")
        return self


class CorsConfig(Strict):
    allow_origins: list[str] = Field(min_length=1)
    allow_methods: list[str] = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    allow_headers: list[str] = ["Authorization", "Content-Type"]
    expose_headers: list[str] = []
    allow_credentials: bool = False
    max_age_s: int = Field(600, ge=0)


class RouteTimeouts(Strict):
    total_s: float | None = Field(None, gt=0, description="the whole exchange, retries included; "
                                  "beyond: 504 (or the connection cut if the answer started)")
    per_try_s: float | None = Field(None, gt=0, description="wait for the response head and "
                                    "between reads, per try (overrides the upstream's read_s); "
                                    "an idempotent request that times out is retried once")


class RouteConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    match: MatchConfig = MatchConfig()
    upstream: str
    strip_prefix: bool = False
    rewrite: str | None = Field(None, description="new path; may use {param} from match")
    auth: Literal["none"] | AuthPolicy | None = None
    claims_to_headers: dict[str, str] = {}
    forward_token: bool = False
    max_body_bytes: ByteSize | None = None
    websocket: bool = True
    cors: CorsConfig | None = None
    preserve_host: bool = False
    rate_limits: list[RateLimitConfig] = []
    timeouts: RouteTimeouts = RouteTimeouts()
    detection: RouteDetection | None = None  # overrides the top-level `detection:`

    @model_validator(mode="after")
    def _checks(self) -> RouteConfig:
        if self.auth is None:
            raise ValueError(
                "route has no 'auth': routes are denied by default; say 'auth: none' to make it public"
            )
        if self.strip_prefix and self.match.path_prefix is None:
            raise ValueError("strip_prefix needs match.path_prefix")
        if self.rewrite is not None:
            if not self.rewrite.startswith("/"):
                raise ValueError("rewrite must start with '/'")
            known = set(re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", self.match.path or self.match.path_prefix or ""))
            used = set(re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", self.rewrite))
            if used - known:
                raise ValueError(f"rewrite uses unknown parameter(s) {sorted(used - known)}")
        if self.detection is not None and self.auth == "none":
            raise ValueError("detection watches token use: a route with auth: none has no "
                             "detection (remove its detection section)")
        names = [limit.name for limit in self.rate_limits]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate rate limit name(s): {sorted({n for n in names if names.count(n) > 1})}")
        return self


class GatewayConfig(Strict):
    listen: HostPort = "127.0.0.1:8080"
    tls: TlsConfig | None = None
    workers: int = Field(1, ge=1, le=256)
    admin: AdminConfig = AdminConfig()
    server_name: str = "wardgate"
    trusted_proxies: NetworkList = []
    limits: Limits = Limits()
    timeouts: Timeouts = Timeouts()
    access_log: AccessLogConfig = AccessLogConfig()
    providers: list[ProviderConfig] = []
    upstreams: list[UpstreamConfig] = Field(min_length=1)
    routes: list[RouteConfig] = Field(min_length=1)
    state: StateConfig = StateConfig()
    tracing: TracingConfig | None = None  # absent: no trace propagation, no spans
    detection: DetectionConfig | None = None  # absent: no detection
    revocation: RevocationConfig | None = None  # absent: no revocation feed
    dpop: DpopConfig = DpopConfig()  # how DPoP proofs are checked (routes say where)

    @property
    def admin_enabled(self) -> bool:
        """The admin listener runs only when the file has an `admin:` section."""
        return "admin" in self.model_fields_set

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        errors = []
        ups = {u.name for u in self.upstreams}
        provs = {p.name for p in self.providers}
        for kind, names in (("upstream", [u.name for u in self.upstreams]),
                            ("route", [r.name for r in self.routes]),
                            ("provider", [p.name for p in self.providers])):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                errors.append(f"duplicate {kind} name(s): {dup}")
        for r in self.routes:
            if r.upstream not in ups:
                errors.append(f"route {r.name!r}: unknown upstream {r.upstream!r}")
            if not self.state.urls():
                for limit in r.rate_limits:
                    if limit.scope == "global":
                        errors.append(f"route {r.name!r}: rate limit {limit.name!r} is global "
                                      "but state.redis_url is not set")
            if r.detection is not None and self.detection is None:
                errors.append(f"route {r.name!r}: detection overrides need the top-level "
                              "detection section")
            if isinstance(r.auth, AuthPolicy):
                for p in r.auth.provider_names():
                    if p not in provs:
                        errors.append(f"route {r.name!r}: unknown provider {p!r}")
        errors += self._revocation_errors(provs)
        errors += self._revoke_action_errors()
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def _revocation_errors(self, provs: set[str]) -> list[str]:
        rv = self.revocation
        deny = [r.name for r in self.routes
                if isinstance(r.auth, AuthPolicy) and r.auth.on_feed_error is not None]
        if rv is None:
            return [f"route {n!r}: on_feed_error needs a revocation: section" for n in deny]
        errors = []
        if rv.provider is None and len(provs) != 1:
            errors.append("revocation.provider: name the provider the feed covers")
        elif rv.provider is not None and rv.provider not in provs:
            errors.append(f"revocation.provider: unknown provider {rv.provider!r}")
        source = rv.source
        if source == "auto":
            source = "redis" if self.state.urls() else "poll"
        if source == "redis" and not self.state.urls():
            errors.append("revocation.source is redis but state.redis_url is not set")
        if source == "poll":
            if rv.poll_url is None:
                errors.append("revocation: polling needs poll_url (or state.redis_url)")
            if not rv.has_token_source():
                errors.append("revocation: polling needs token_env or token_file")
        return errors

    def _revoke_action_errors(self) -> list[str]:
        """`detection` action `revoke` goes through the revocation feed (detect/revoker.py)."""
        d = self.detection
        if d is None:
            return []
        uses = d.action == "revoke" or any(
            r.detection is not None and r.detection.action == "revoke" for r in self.routes)
        if not uses:
            return []
        if self.revocation is None:
            return ["detection action revoke needs a revocation: section (the feed it "
                    "revokes through)"]
        if self.revocation_source() == "redis":
            return []
        errors = []
        if (d.revoke.url or self.revocation.poll_url) is None:
            errors.append("detection.revoke: without Redis it needs url (the issuer's POST "
                          "/revocations) or revocation.poll_url")
        if not d.revoke.has_token_source():
            errors.append("detection.revoke: without Redis it needs token_env or token_file "
                          "(the token of the issuer's revocations.report)")
        return errors

    def revocation_source(self) -> str:
        rv = self.revocation
        if rv is None:
            return "none"
        if rv.source != "auto":
            return rv.source
        return "redis" if self.state.urls() else "poll"
