"""When to fetch a remote key set, and whether its keys may still be used. Sans-I/O.

The fetcher (sources.py) reports outcomes here and asks what to do next; all times come from the
caller, so the policy is tested with plain numbers.
"""

from __future__ import annotations

import re

from wardgate.config.auth import RefreshConfig

_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*\"?(\d{1,10})\"?\s*(?=,|$)", re.I)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?=,|=|$)", re.I)


def cache_lifetime(cache_control: str | None) -> float | None:
    """Seconds from Cache-Control (RFC 9111 §5.2.2), 0 for no-store/no-cache, None if absent."""
    if not cache_control:
        return None
    if _NO_CACHE.search(cache_control):
        return 0.0
    ages = [int(m) for m in _MAX_AGE.findall(cache_control)]
    return float(min(ages)) if ages else None


class RefreshSchedule:
    """Refresh timing, unknown-kid cooldown and the stale bound of one remote key set."""

    def __init__(self, cfg: RefreshConfig) -> None:
        self.cfg = cfg
        self.next_at = 0.0               # fetch as soon as started
        self.last_success: float | None = None
        self.last_kid_fetch = float("-inf")
        self.failures = 0
        self.etag: str | None = None

    def interval(self, cache_control: str | None) -> float:
        """The issuer's hint, held within [min_interval_s, max_interval_s]."""
        hinted = cache_lifetime(cache_control)
        if hinted is None:
            return self.cfg.max_interval_s
        return min(max(hinted, self.cfg.min_interval_s), self.cfg.max_interval_s)

    def on_success(self, now: float, cache_control: str | None, etag: str | None) -> None:
        self.last_success = now
        self.failures = 0
        self.etag = etag
        self.next_at = now + self.interval(cache_control)

    def on_not_modified(self, now: float, cache_control: str | None) -> None:
        self.last_success = now
        self.failures = 0
        self.next_at = now + self.interval(cache_control)

    def on_failure(self, now: float) -> float:
        """Back off exponentially from retry_s up to max_interval_s; returns the delay."""
        delay = min(self.cfg.retry_s * (2 ** min(self.failures, 20)), self.cfg.max_interval_s)
        self.failures += 1
        self.next_at = now + delay
        return delay

    def kid_fetch_allowed(self, now: float) -> bool:
        """An unknown kid may trigger a fetch at most once per cooldown (flood protection)."""
        return now - self.last_kid_fetch >= self.cfg.unknown_kid_cooldown_s

    def note_kid_fetch(self, now: float) -> None:
        self.last_kid_fetch = now

    def stale(self, now: float) -> bool:
        """True once the last good keys are older than max_stale_s (or none ever arrived)."""
        return self.last_success is None or now - self.last_success > self.cfg.max_stale_s
