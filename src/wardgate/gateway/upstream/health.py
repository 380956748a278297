"""Passive health (outlier detection) of one target. Sans-I/O: the clock is passed in.

A target is HEALTHY, EJECTED (until `ejected_until`) or HALF_OPEN. It is ejected after
`max_failures` consecutive failures (connect errors, resets, timeouts and the configured 5xx
statuses) or when its error rate over a sliding window passes a threshold. Each ejection lasts
twice the previous one, up to a cap; the count decays once the target has stayed healthy for
the cap. When an ejection ends the target is HALF_OPEN: one trial request at a time; its success
closes the breaker (and starts the slow-start ramp), its failure ejects again at once.
"""

from __future__ import annotations

HEALTHY, EJECTED, HALF_OPEN = 0, 1, 2
STATE_NAMES = ("healthy", "ejected", "half_open")


class ErrorRateWindow:
    """Requests and failures over the last `window_s`, in `buckets` fixed slices."""

    __slots__ = ("threshold", "min_requests", "_slice", "_n", "_totals", "_errors", "_head")

    def __init__(self, window_s: float, threshold: float, min_requests: int, buckets: int = 10) -> None:
        self.threshold = threshold
        self.min_requests = min_requests
        self._slice = window_s / buckets
        self._n = buckets
        self._totals = [0] * buckets
        self._errors = [0] * buckets
        self._head = 0  # index (in slices since the clock's epoch) of the newest slice

    def _advance(self, now: float) -> int:
        idx = int(now / self._slice)
        head = self._head
        if idx != head:
            n = self._n
            # Clear every slice that went by since the last record (all of them after a gap).
            for k in range(head + 1, min(idx, head + n) + 1):
                self._totals[k % n] = 0
                self._errors[k % n] = 0
            self._head = idx
        return idx % self._n

    def record(self, now: float, failed: bool) -> bool:
        """Count one outcome; True when the window's error rate reaches the threshold."""
        i = self._advance(now)
        self._totals[i] += 1
        if not failed:
            return False
        self._errors[i] += 1
        total = sum(self._totals)
        return total >= self.min_requests and sum(self._errors) >= self.threshold * total

    def rate(self, now: float) -> tuple[int, int]:
        """(requests, failures) in the window."""
        self._advance(now)
        return sum(self._totals), sum(self._errors)

    def reset(self) -> None:
        for k in range(self._n):
            self._totals[k] = 0
            self._errors[k] = 0


class PassiveHealth:
    __slots__ = ("failures", "ejected_until", "ejections", "state", "since", "rate",
                 "fail_statuses", "slow_start_s", "last_ejection", "total_ejections", "_max_failures", "_base", "_cap")

    def __init__(self, max_failures: int, ejection_s: float, max_ejection_s: float, *,
                 fail_statuses: frozenset[int] = frozenset(), rate: ErrorRateWindow | None = None,
                 slow_start_s: float = 0.0) -> None:
        self.failures = 0
        self.ejected_until = 0.0
        self.ejections = 0
        self.state = HEALTHY
        self.since = -1e18          # when the target last became healthy (slow start's origin)
        self.rate = rate
        self.fail_statuses = fail_statuses
        self.slow_start_s = slow_start_s
        self.last_ejection = -1e18
        self.total_ejections = 0  # since start, for metrics (`ejections` is the back-off's)
        self._max_failures = max_failures
        self._base = ejection_s
        self._cap = max_ejection_s

    def healthy(self, now: float) -> bool:
        return now >= self.ejected_until

    def calm(self, now: float) -> bool:
        """Serving at full share: healthy and past its slow start (the cluster's fast path)."""
        return self.state == HEALTHY and now - self.since >= self.slow_start_s

    def available(self, now: float, active: int) -> bool:
        """May take a request now? Moves an expired ejection to HALF_OPEN."""
        state = self.state
        if state == EJECTED:
            if now < self.ejected_until:
                return False
            self.state = state = HALF_OPEN
        if state == HALF_OPEN:
            return active == 0  # one trial request at a time
        return True

    def share(self, now: float) -> float:
        """Slow start: a returning target's share of its weight, ramping from 10% to 100%."""
        s = self.slow_start_s
        if not s:
            return 1.0
        age = now - self.since
        return 1.0 if age >= s else max(0.1, age / s)

    def success(self, now: float = 0.0) -> bool:
        """Record a success; True when it closes a half-open target (state changed)."""
        if self.failures:
            self.failures = 0
        if self.state == HALF_OPEN:
            self.state = HEALTHY
            self.ejected_until = 0.0
            self.since = now
            return True
        return False

    def record_success(self, now: float) -> None:
        """The error-rate window's count of a success (only when a window is configured)."""
        if self.rate is not None:
            self.rate.record(now, False)

    def failure(self, now: float) -> bool:
        """Record a failure; return True when this failure ejects the target."""
        state = self.state
        if state == EJECTED:
            return False  # a request that started before the ejection
        self.failures += 1
        tripped = state == HALF_OPEN or self.failures >= self._max_failures
        if self.rate is not None and self.rate.record(now, True):
            tripped = True
        if tripped:
            self._eject(now)
        return tripped

    def _eject(self, now: float) -> None:
        if now - self.last_ejection > self._cap + self._base and self.state == HEALTHY:
            self.ejections = 0  # healthy for long enough: back-off starts over
        self.ejected_until = now + min(self._cap, self._base * (2 ** self.ejections))
        self.ejections += 1
        self.total_ejections += 1
        self.last_ejection = now
        self.failures = 0
        self.state = EJECTED
        if self.rate is not None:
            self.rate.reset()
