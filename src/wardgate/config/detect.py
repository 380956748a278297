"""Configuration of fraud detection (`detection:` and `routes[].detection`, docs/configuration.md).

The top-level section's presence turns detection on for every route with `auth`; a route's
own `detection:` only overrides (`enabled: false`, or another `action`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from wardgate.config.common import NetworkList, Strict
from wardgate.config.revocation import RevocationConfig, _Secret

Action = Literal["log", "header", "step_up", "deny", "revoke"]
ACTIONS: tuple[str, ...] = ("log", "header", "step_up", "deny", "revoke")


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


class ErrorSignal(Strict):
    """A subject's error ratio far above its own learned baseline (EWMA of its per-bucket
    error ratio and of their absolute deviations; cold start from the population)."""

    enabled: bool = True
    bucket_s: float = Field(30.0, gt=0, le=3600)
    min_errors: int = Field(10, ge=1, description="never fires below this many errors per "
                            "bucket")
    min_ratio: float = Field(0.5, gt=0, le=1, description="never fires below this error ratio")
    k: float = Field(4.0, gt=0, description="fires above mean + k * deviation")
    alpha: float = Field(0.2, gt=0, le=1, description="EWMA weight of the newest bucket")
    min_bucket: int = Field(5, ge=1, description="a bucket is learned from this many requests")


class ModelSignal(Strict):
    """The learned anomaly model: Half-Space Trees over per-subject feature vectors."""

    enabled: bool = True
    window_s: float = Field(2.0, gt=0, le=3600, description="a subject's feature window (short: a verdict within the 2 s target)")
    min_requests: int = Field(8, ge=2, le=100_000, description="a window is scored at this "
                              "many requests and every doubling after")
    threshold: float = Field(0.1, gt=0, lt=1, description="fires at this model score (0-1) "
                             "at least ...")
    score_k: float = Field(3.0, gt=0, description="... and above the learned windows' scores' "
                           "EWMA mean + score_k EWMA deviations ...")
    min_deviation: float = Field(4.0, gt=0, description="... with a feature this many robust "
                                 "deviations above the population")
    trees: int = Field(25, ge=1, le=100)
    height: int = Field(10, ge=2, le=16)
    reference: int = Field(128, ge=16, le=100_000, description="windows per reference window")
    seed: int = Field(17, description="the trees' random seed (deterministic)")
    max_per_s: int = Field(200, ge=1, le=1_000_000, description="windows learned or scored "
                           "a second at most (the model's cost is bounded)")


class RevokeAction(_Secret):
    """`action: revoke`: a verdict revokes the token (or, with `subject`, the subject) through
    the revocation feed. With state.redis_url the event goes onto the feed's Redis stream;
    without, to the issuer's POST /revocations (`url`, default revocation.poll_url) with
    this token (the one of the issuer's `revocations.report`)."""

    subject: bool = Field(False, description="revoke every token of the subject issued before "
                          "now, not only the token in use")
    max_per_minute: int = Field(30, ge=1, le=100_000, description="revocations sent per "
                                "worker and minute at most (a storm of verdicts cannot flood "
                                "the feed); beyond, a verdict only denies")
    burst: int = Field(10, ge=1, le=100_000)
    subject_hold_s: float = Field(86_400.0, gt=0, le=30 * 86_400, description="how long a "
                                  "subject revocation is kept: at least the longest token "
                                  "lifetime")
    url: str | None = Field(None, description="the issuer's POST /revocations (no Redis); "
                            "default: revocation.poll_url")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return RevocationConfig._url(v) if v is not None else v


class DetectionConfig(Strict):
    enabled: bool = True
    action: Action = Field("log", description="log | header | step_up | deny | revoke, for "
                           "every route unless the route says otherwise")
    dry_run: bool = Field(False, description="log and count verdicts, enforce nothing")
    deny_s: float = Field(300.0, gt=0, le=86_400, description="how long a verdict holds for its "
                          "token, subject or network (header, step_up and deny act this long)")
    cooldown_s: float = Field(60.0, ge=0, description="one event per signal and key this often")
    header: str = Field("X-Wardgate-Risk", pattern=r"^[Xx]-[Ww]ardgate-[A-Za-z0-9-]+$",
                        description="the risk header the upstream gets (action: header)")
    allow_networks: NetworkList = Field([], description="CIDRs never flagged (NAT egress, "
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
    errors: ErrorSignal = ErrorSignal()
    model: ModelSignal = ModelSignal()
    revoke: RevokeAction = RevokeAction()


class RouteDetection(Strict):
    """A route's override of the top-level `detection:`."""

    enabled: bool = True
    action: Action | None = Field(None, description="this route's action; default: the "
                                  "top-level one")
