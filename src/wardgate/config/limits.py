"""Configuration of shared state (`state:`) and per-route rate limits (`routes[].rate_limits`)."""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from wardgate.config.common import ExistingFile, Strict

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60,
            "h": 3600, "hour": 3600}
_KEY = re.compile(r"^(sub|client_id|ip|route|header:[A-Za-z0-9!#$%&'*+.^_`|~-]+|"
                  r"claim:[A-Za-z0-9_:/.-]+)$")


class StateConfig(Strict):
    redis_url: str | list[str] | None = Field(
        None, description="redis://[user:password@]host:port[/db], rediss:// for TLS; a list "
                          "(or cluster: true) is a Redis Cluster seed list")
    cluster: bool = False
    timeout_ms: int = Field(50, ge=1, le=60_000,
                            description="a call slower than this counts as a store error")
    pool_size: int = Field(2, ge=1, le=64, description="connections per Redis node per worker")
    password_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                     description="environment variable holding the password")
    tls_ca_file: ExistingFile | None = None

    @model_validator(mode="after")
    def _urls(self) -> StateConfig:
        from wardgate.state.nodes import parse_url, redact

        urls = self.urls()
        if isinstance(self.redis_url, list):
            if not urls:
                raise ValueError("redis_url: an empty list")
            object.__setattr__(self, "cluster", True)
        elif len(urls) > 1 and not self.cluster:
            raise ValueError("several Redis nodes are a Cluster seed list: set cluster: true")
        for u in urls:
            try:
                parse_url(u, cluster=self.cluster)
            except ValueError as exc:
                raise ValueError(f"redis_url: {exc}") from None
        if self.password_env is not None and self.password_env not in os.environ:
            raise ValueError(f"environment variable {self.password_env} is not set")
        if self.tls_ca_file is not None and not any(u.startswith("rediss://") for u in urls):
            raise ValueError(f"tls_ca_file needs a rediss:// URL (got {[redact(u) for u in urls]})")
        return self

    def urls(self) -> list[str]:
        """The configured node URLs ([] without Redis); a comma-separated string is a list."""
        v = self.redis_url
        if v is None:
            return []
        if isinstance(v, list):
            return [u.strip() for u in v if u.strip()]
        return [u.strip() for u in v.split(",") if u.strip()]


class RateLimitConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    key: str = Field("ip", description="sub | client_id | ip | route | header:NAME | claim:PATH")
    rate: str = Field(description="N/s, N/m or N/h")
    burst: int = Field(0, ge=0, le=1_000_000, description="extra requests allowed at once")
    scope: Literal["local", "global"] = "local"
    on_store_error: Literal["allow", "deny"] = "allow"
    max_keys: int = Field(65_536, ge=16, le=10_000_000,
                          description="local scope: keys remembered per worker")

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not _KEY.match(v):
            raise ValueError(f"{v!r}: expected sub, client_id, ip, route, header:NAME or "
                             "claim:PATH")
        return v

    @field_validator("rate")
    @classmethod
    def _rate(cls, v: str) -> str:
        m = _RATE.match(v)
        if not m or int(m.group(1)) < 1:
            raise ValueError(f"{v!r}: expected a rate such as 100/s, 600/m or 1000/h")
        if int(m.group(1)) > 10_000_000:
            raise ValueError(f"{v!r}: at most 10000000 requests per period")
        return v

    def count_period(self) -> tuple[int, int]:
        """(N, period in seconds) of `rate`."""
        m = _RATE.match(self.rate)
        assert m is not None  # checked at load
        return int(m.group(1)), _PERIODS[m.group(2)]
