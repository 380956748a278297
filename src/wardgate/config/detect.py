"""Configuration of fraud detection (`detection:` and `routes[].detection`, docs/configuration.md).

The top-level section's presence turns detection on for every route with `auth`; a route's
own `detection:` only overrides (`enabled: false`, or another `action`).
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator

from wardgate.config.common import Strict

Action = Literal["log", "header", "step_up", "deny"]
ACTIONS: tuple[str, ...] = ("log", "header", "step_up", "deny")


class ReplaySignal(Strict):
    """One token used from several networks or user agents, or alternating between them."""

    enabled: bool = True
    window_s: float = Field(300.0, gt=0, le=86_400, description="switches counted over this long")
    switch_score: float = Field(3.0, gt=0, description="a network switch scores 1, a user-agent "
                                "switch 2; this total within the window fires")
    max_networks: int = Field(4, ge=2, le=64, description="distinct networks within the window "
                              "that fire on their own")


class RateSignal(Strict):
    """A subject's requests per bucket far above its own learned baseline (EWMA of counts and
    of absolute deviations, bursts clipped out of the learning; cold start from the population)."""

    enabled: bool = True
    bucket_s: float = Field(10.0, gt=0, le=3600)
    min_requests: int = Field(100, ge=1, description="never fires below this many per bucket")
    k: float = Field(6.0, gt=0, description="fires above mean + k * deviation")
    alpha: float = Field(0.2, gt=0, le=1, description="EWMA weight of the newest bucket")


class EnumerationSignal(Strict):
    """Sequential or high-cardinality path parameters (or paths) from one subject on a route."""

    enabled: bool = True
    window_s: float = Field(60.0, gt=0, le=86_400)
    max_distinct: int = Field(50, ge=2, le=100_000, description="distinct values per window")
    sequential_run: int = Field(10, ge=2, le=100_000,
                                description="consecutive numeric values (n, n+1, ...)")


class RefusedSignal(Strict):
    """Refused tokens from one network (a storm, or key/issuer probing)."""

    enabled: bool = True
    window_s: float = Field(60.0, gt=0, le=86_400)
    min_refusals: int = Field(20, ge=1, le=1_000_000)


class DetectionConfig(Strict):
    enabled: bool = True
    action: Action = Field("log", description="log | header | step_up | deny, for every route "
                           "unless the route says otherwise")
    dry_run: bool = Field(False, description="log and count verdicts, enforce nothing")
    deny_s: float = Field(300.0, gt=0, le=86_400, description="how long a verdict holds for its "
                          "token, subject or network (header, step_up and deny act this long)")
    cooldown_s: float = Field(60.0, ge=0, description="one event per signal and key this often")
    header: str = Field("X-Wardgate-Risk", pattern=r"^[Xx]-[Ww]ardgate-[A-Za-z0-9-]+$",
                        description="the risk header the upstream gets (action: header)")
    allow_networks: list[str] = Field([], description="CIDRs never flagged (NAT egress, "
                                      "offices): their requests feed no network signal")
    allow_subjects: list[str] = Field([], description="`sub` values never flagged")
    allow_clients: list[str] = Field([], description="`client_id`/`azp` values never flagged "
                                     "(service clients)")
    interval_ms: int = Field(100, ge=10, le=10_000, description="the detector runs this often")
    buffer: int = Field(65_536, ge=256, le=4_000_000, description="events held between runs "
                        "per worker; the oldest are dropped beyond")
    max_keys: int = Field(100_000, ge=16, le=10_000_000, description="tokens, subjects and "
                          "networks remembered per signal and worker")
    shared: bool = Field(True, description="with state.redis_url, token observations and "
                         "verdicts are shared by every worker and gateway through Redis")
    issuer_feed: bool = Field(True, description="with state.redis_url, the issuer's "
                              "detections (login abuse, refresh-token reuse) are read from "
                              "`issuer_stream` and shown here")
    issuer_stream: str = Field("{wardgate:detections}", min_length=1, max_length=200)
    issuer_flags: bool = Field(True, description="an issuer verdict about a network flags it "
                               "here for deny_s (each route acts by its action)")
    replay: ReplaySignal = ReplaySignal()
    rate: RateSignal = RateSignal()
    enumeration: EnumerationSignal = EnumerationSignal()
    refused: RefusedSignal = RefusedSignal()

    @field_validator("allow_networks")
    @classmethod
    def _nets(cls, v: list[str]) -> list[str]:
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r}: expected an IP address or CIDR") from None
        return v


class RouteDetection(Strict):
    """A route's override of the top-level `detection:`."""

    enabled: bool = True
    action: Action | None = Field(None, description="this route's action; default: the "
                                  "top-level one")
