"""The revocation feed (wardgate.revoke) as metrics, written from the worker's sweeper.

Per worker, summed or maxed over workers by the exposition: how many workers hold fresh or
stale state, the worst staleness, the entries held per kind, the feed cursor, and counters
of failed syncs, events that did not validate and cache entries dropped by revocations.
"""

from __future__ import annotations

import time
from typing import Any

from wardgate.observe.http import GatewayMetrics
from wardgate.revoke.events import KINDS

_NEVER = 2**31  # staleness before the first sync: a large, finite number of seconds


class RevocationMetrics:
    def __init__(self, metrics: GatewayMetrics, feed: Any) -> None:
        reg = metrics.registry
        src = feed.source
        workers = reg.family("wardgate_revocation_feed_workers", "gauge",
                             "Workers whose revocation state is fresh or stale",
                             ("source", "state"))
        stale = reg.family("wardgate_revocation_feed_staleness_seconds", "gauge",
                           "Seconds since the last good sync with the feed (max over workers)",
                           ("source",), mode="max")
        entries = reg.family("wardgate_revocation_entries", "gauge",
                             "Revocation entries held, by kind (max over workers)", ("kind",),
                             mode="max")
        cursor = reg.family("wardgate_revocation_feed_cursor", "gauge",
                            "The newest issuer event applied (max over workers)", mode="max")
        errors = reg.family("wardgate_revocation_feed_errors_total", "counter",
                            "Failed syncs with the revocation feed", ("source",))
        rejected = reg.family("wardgate_revocation_events_rejected_total", "counter",
                              "Feed events that did not validate (dropped)")
        dropped = reg.family("wardgate_revocation_cache_drops_total", "counter",
                             "Verified-token cache entries dropped by revocations")
        self.feed = feed
        self.slots = (reg.series(workers, src, "fresh"), reg.series(workers, src, "stale"),
                      reg.series(stale, src), {k: reg.series(entries, k) for k in KINDS},
                      reg.series(cursor), reg.series(errors, src), reg.series(rejected),
                      reg.series(dropped))
        self.values: Any = None
        metrics.on_bind(self._bind)
        metrics.on_sample(self.sample)

    def _bind(self, values: Any) -> None:
        self.values = values

    def sample(self, now: float) -> None:
        v = self.values
        if v is None:
            return
        feed = self.feed
        health = feed.health
        fresh, stale_w, age, per_kind, cursor, errors, rejected, dropped = self.slots
        v[fresh] = 1 if health.fresh else 0
        v[stale_w] = 0 if health.fresh else 1
        staleness = health.staleness(time.time())
        v[age] = int(staleness) if staleness < _NEVER else _NEVER
        for kind, n in feed.set.sizes().items():
            v[per_kind[kind]] = n
        v[cursor] = feed.set.cursor
        v[errors] = health.errors
        v[rejected] = feed.set.rejected
        v[dropped] = feed.dropped
