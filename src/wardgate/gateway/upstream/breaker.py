"""Circuit breaking for one upstream (per worker): how many requests may be in flight, how many
may wait for a new connection, and how many may be retries. Sans-I/O: plain counters that the
exchange moves; a request beyond a limit is answered 503 with Retry-After at once, so nothing
queues without bound.

The retry budget is Envoy's `retry_budget`: retries in flight may be at most `retry_percent` of
the requests in flight, but never fewer than `retry_min` (so a quiet upstream can still retry).
"""

from __future__ import annotations


class Breaker:
    __slots__ = ("active", "pending", "retrying", "max_requests", "max_pending", "retry_percent",
                 "retry_min", "rejected_requests", "rejected_pending", "retries", "retries_denied")

    def __init__(self, max_requests: int, max_pending: int, retry_percent: float,
                 retry_min: int) -> None:
        self.active = 0       # requests in flight (started, not yet answered)
        self.pending = 0      # of those, waiting for a new upstream connection
        self.retrying = 0     # of those, on their retry
        self.max_requests = max_requests
        self.max_pending = max_pending
        self.retry_percent = retry_percent
        self.retry_min = retry_min
        # Totals since start, for a metrics/admin layer to read.
        self.rejected_requests = 0
        self.rejected_pending = 0
        self.retries = 0
        self.retries_denied = 0

    def retry_allowed(self) -> bool:
        """Take one retry from the budget if there is room (the caller then retries)."""
        budget = self.active * self.retry_percent / 100.0
        if self.retrying < (budget if budget > self.retry_min else self.retry_min):
            self.retrying += 1
            self.retries += 1
            return True
        self.retries_denied += 1
        return False

    def snapshot(self) -> dict[str, int | float]:
        return {
            "active": self.active, "pending": self.pending, "retrying": self.retrying,
            "max_requests": self.max_requests, "max_pending": self.max_pending,
            "rejected_requests": self.rejected_requests, "rejected_pending": self.rejected_pending,
            "retries": self.retries, "retries_denied": self.retries_denied,
        }
