"""Configuration of trace propagation and export (`tracing:`, docs/configuration.md)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from wardgate.config.common import Strict


class TracingConfig(Strict):
    """W3C Trace Context on every request, and OTLP/HTTP export of one span per request.

    The section's presence turns propagation on; spans are exported only when
    `otlp_endpoint` is set."""

    otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces; "
                          "null: propagate only, export nothing")
    sample_ratio: float | None = Field(
        None, ge=0.0, le=1.0,
        description="share of new traces sampled; default 1.0 when exporting, else 0.0")
    trust_inbound: Literal["any", "trusted_proxies", "none"] = Field(
        "any", description="whose valid traceparent is continued (else a new trace starts)")
    service_name: str = Field("wardgate", min_length=1, max_length=255,
                              description="the service.name resource attribute")
    batch_size: int = Field(512, ge=1, le=10_000, description="spans per export request")
    flush_interval_ms: int = Field(1000, ge=10, le=60_000,
                                   description="export at least this often")
    queue_size: int = Field(4096, ge=1, le=1_000_000,
                            description="spans held per worker; more are dropped and counted")
    timeout_ms: int = Field(1000, ge=10, le=30_000,
                            description="one export request (connect, send, answer)")

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is None:
            return None
        u = urlsplit(v)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"{v!r}: expected an http:// or https:// URL "
                             "(OTLP/HTTP, e.g. http://127.0.0.1:4318/v1/traces)")
        if u.username or u.password or u.fragment:
            raise ValueError(f"{v!r}: no credentials or fragment in the endpoint URL")
        try:
            u.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError(f"{v!r}: bad port") from None
        return v

    @model_validator(mode="after")
    def _bounds(self) -> TracingConfig:
        if self.batch_size > self.queue_size:
            raise ValueError(f"batch_size ({self.batch_size}) must not exceed queue_size "
                             f"({self.queue_size})")
        return self

    @property
    def exporting(self) -> bool:
        return self.otlp_endpoint is not None

    @property
    def ratio(self) -> float:
        """The sampling ratio in force (the default depends on whether spans are exported)."""
        if self.sample_ratio is not None:
            return self.sample_ratio
        return 1.0 if self.exporting else 0.0
