"""`revocation:` of the gateway and `revocations:` of the issuer (docs/configuration.md)."""

from __future__ import annotations

import os
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from wardgate.config.common import ExistingFile, Strict

FeedPolicy = Literal["allow", "deny"]
_ENV = r"^[A-Za-z_][A-Za-z0-9_]*$"
MIN_FEED_TOKEN = 16


def _read_secret(env: str | None, path: str | None) -> str | None:
    raw: str | None = None
    if env is not None:
        raw = os.environ.get(env)
    elif path is not None:
        with open(path, encoding="utf-8") as f:
            raw = f.read()
    raw = (raw or "").strip()
    return raw or None


class _Secret(Strict):
    token_env: str | None = Field(None, pattern=_ENV,
                                  description="environment variable holding the feed token")
    token_file: ExistingFile | None = Field(None, description="file holding the feed token")

    @model_validator(mode="after")
    def _secret(self) -> _Secret:
        if self.token_env is not None and self.token_file is not None:
            raise ValueError("set token_env or token_file, not both")
        # An unset variable is a run-time matter, as for admin.token_env: a poller without
        # its token reports the feed stale (logged once), an issuer serves no feed (404).
        # A token that is there must be long enough to be a secret.
        tok = self.token()
        if (self.token_file or tok is not None) and (tok is None or len(tok) < MIN_FEED_TOKEN):
            raise ValueError(f"the feed token must have at least {MIN_FEED_TOKEN} characters")
        return self

    def has_token_source(self) -> bool:
        return self.token_env is not None or self.token_file is not None

    def token(self) -> str | None:
        return _read_secret(self.token_env, self.token_file)


class RevocationConfig(_Secret):
    """The gateway's revocation feed."""

    provider: str | None = Field(None, description="the provider whose tokens the feed covers "
                                                   "(default: the only provider)")
    source: Literal["auto", "redis", "poll"] = Field(
        "auto", description="auto: the Redis stream when state.redis_url is set, else polling")
    poll_url: str | None = Field(None, description="the issuer's GET /revocations URL")
    poll_interval_s: float = Field(0.5, ge=0.05, le=60)
    timeout_s: float = Field(5.0, gt=0, le=60, description="one poll or one stream read")
    max_staleness_s: float = Field(10.0, gt=0, le=86_400,
                                   description="state older than this counts as a feed error")
    on_feed_error: FeedPolicy = Field("allow", description="routes' default while stale")
    startup_wait_s: float = Field(5.0, ge=0, le=120,
                                  description="a worker waits this long for its first sync")
    stream_key: str = Field("{wardgate:revocations}", min_length=1, max_length=200)

    @field_validator("poll_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("poll_url must be an http(s) URL")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("poll_url must be https unless it is a loopback address "
                             "(the feed token travels with every poll)")
        return v


class ReportSecret(_Secret):
    """Who may POST /revocations: gateways whose detection revokes (action revoke) without
    Redis. A token of its own, not the feed's: reading the feed does not let one revoke."""


class IssuerRevocations(_Secret):
    """The issuer's side: who may read GET /revocations, and the Redis relay."""

    report: ReportSecret | None = Field(None, description="the token of POST /revocations "
                                        "(absent: the endpoint does not exist)")

    relay_interval_s: float = Field(0.1, ge=0.01, le=10,
                                    description="how often new events are relayed to Redis")
    grace_s: int = Field(300, ge=0, le=3600, description="events are served this long after "
                                                        "`until` (covers gateway leeway)")
    stream_key: str = Field("{wardgate:revocations}", min_length=1, max_length=200)
