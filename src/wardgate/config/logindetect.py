"""Configuration of login abuse detection at the issuer (`detection:` in the issuer's file;
docs/configuration.md#issuer-detection, docs/security.md#login-abuse-at-the-issuer).

The section's presence turns it on; without it the issuer runs no login detection.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator

from wardgate.config.common import Strict

LoginAction = Literal["log", "slow_down", "deny"]
LOGIN_ACTIONS: tuple[str, ...] = ("log", "slow_down", "deny")


class StuffingSignal(Strict):
    """Many distinct usernames failing from one network (/24 IPv4, /48 IPv6)."""

    enabled: bool = True
    window_s: float = Field(300.0, gt=0, le=86_400, description="attempts counted over this long")
    min_usernames: int = Field(10, ge=2, le=100_000, description="distinct usernames failing "
                               "from one network (and not succeeding since) within the window "
                               "that fire")
    min_failure_ratio: float = Field(0.5, ge=0, le=1, description="and they are at least this "
                                     "share of the distinct usernames tried from the network "
                                     "(an office signs in mostly right)")


class SprayingSignal(Strict):
    """One username failing from many networks; and few passwords across many usernames from
    one network (a keyed hash of each failed password, in memory only)."""

    enabled: bool = True
    window_s: float = Field(600.0, gt=0, le=86_400, description="failures counted over this long")
    min_networks: int = Field(5, ge=2, le=1024, description="distinct networks failing on one "
                              "username within the window that fire")
    password_tags: bool = Field(True, description="keep a keyed 64-bit hash of each failed "
                                "password in memory (never logged, persisted or shared) to tell "
                                "spraying from stuffing on one network")
    password_ratio: float = Field(0.25, gt=0, le=1, description="a network's failures are "
                                  "spraying when distinct passwords / failures <= this")


class IssuerDetection(Strict):
    enabled: bool = True
    action: LoginAction = Field("log", description="log | slow_down (429) | deny (403): what "
                                "further attempts from a flagged network get")
    dry_run: bool = Field(False, description="log and publish verdicts, enforce nothing")
    deny_s: float = Field(300.0, gt=0, le=86_400, description="how long a verdict holds for "
                          "its network")
    cooldown_s: float = Field(60.0, ge=0, description="one event per signal and key this often")
    allow_networks: list[str] = Field([], description="CIDRs never flagged (NAT egress, "
                                      "offices): their attempts feed no network signal")
    max_keys: int = Field(100_000, ge=16, le=10_000_000, description="networks and usernames "
                          "remembered per signal")
    publish: bool = Field(True, description="with state.redis_url, verdicts (and refresh-token "
                          "reuse) are appended to `stream_key` for the gateways")
    stream_key: str = Field("{wardgate:detections}", min_length=1, max_length=200)
    stream_maxlen: int = Field(1000, ge=10, le=1_000_000, description="entries kept in the "
                               "stream (approximately)")
    stuffing: StuffingSignal = StuffingSignal()
    spraying: SprayingSignal = SprayingSignal()

    @field_validator("allow_networks")
    @classmethod
    def _nets(cls, v: list[str]) -> list[str]:
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r}: expected an IP address or CIDR") from None
        return v
