"""Whether a worker's revocation state is fresh: sans-I/O, the clock passed in.

The state is fresh while the last good sync with the feed (a poll answered, a stream read
returned) is at most `max_staleness_s` old. Routes with `on_feed_error: deny` refuse with 503
while it is not; the others serve on what the worker holds. Each change between fresh and
stale is logged once (the adapters' retries are not), and `/metrics` shows the state.
"""

from __future__ import annotations

from wardgate import logs


class FeedHealth:
    __slots__ = ("source", "max_staleness_s", "last_ok", "fresh", "error", "errors", "syncs",
                 "_logged")

    def __init__(self, source: str, max_staleness_s: float) -> None:
        self.source = source
        self.max_staleness_s = max_staleness_s
        self.last_ok: float | None = None   # wall-clock time of the last good sync
        self.fresh = False                  # read on the request path (deny routes only)
        self.error = ""
        self.errors = 0
        self.syncs = 0
        self._logged: bool | None = None    # None: nothing logged yet

    def ok(self, now: float) -> None:
        self.last_ok = now
        self.syncs += 1
        self.error = ""
        if not self.fresh:
            self.fresh = True
            self._transition()

    def failed(self, reason: str) -> None:
        self.errors += 1
        self.error = reason

    def tick(self, now: float) -> None:
        """From the worker's sweeper: goes stale once the bound has passed without a sync."""
        fresh = self.last_ok is not None and now - self.last_ok <= self.max_staleness_s
        if fresh != self.fresh:
            self.fresh = fresh
            self._transition()
        elif self._logged is None and not fresh and self.errors:
            self._transition()  # never synced since start: say so once

    def staleness(self, now: float) -> float:
        return now - self.last_ok if self.last_ok is not None else float("inf")

    def _transition(self) -> None:
        if self._logged is self.fresh:
            return
        self._logged = self.fresh
        if self.fresh:
            logs.event("revocation_feed_fresh", source=self.source)
        else:
            logs.event("revocation_feed_stale", level="warning", source=self.source,
                       max_staleness_s=self.max_staleness_s, reason=self.error or "no sync yet")
