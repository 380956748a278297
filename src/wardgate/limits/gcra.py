"""GCRA, the generic cell rate algorithm, without I/O: one timestamp per key (the theoretical
arrival time, TAT), exact, no window edges.

A limit of N per period with burst B has an emission interval T = period / N and a tolerance
tau = B * T. A request at `now` is allowed when max(TAT, now) - now <= tau; it then moves TAT
to max(TAT, now) + T. So B + 1 requests pass at once from a rested key, then one every T.
A key whose TAT is in the past is indistinguishable from a new one, which is what lets idle
keys be forgotten (and expire in Redis) without changing any decision.
"""

from __future__ import annotations

from itertools import islice

EPS = 1e-9


#: (allowed, remaining, retry_after, reset_after, tat): a plain tuple, built on every request.
#: remaining: requests that would pass right now, after this one; retry_after: seconds until a
#: refused request would pass (0 when allowed); reset_after: seconds until the key is fully
#: rested; tat: the TAT to store (unchanged when refused).
Decision = tuple[bool, int, float, float, float]
ALLOWED, REMAINING, RETRY_AFTER, RESET_AFTER, TAT = range(5)


class Gcra:
    __slots__ = ("interval", "tolerance", "count", "period", "_limit")

    def __init__(self, count: int, period_s: float, burst: int) -> None:
        if count < 1 or period_s <= 0 or burst < 0:
            raise ValueError("count >= 1, period > 0, burst >= 0")
        self.count = count
        self.period = period_s
        self.interval = period_s / count
        self.tolerance = self.interval * burst
        self._limit = self.tolerance + EPS

    def decide(self, tat: float, now: float) -> Decision:
        """The decision for a request at `now` on a key with `tat` (0 for a new key)."""
        interval = self.interval
        if tat <= now:
            # at rest: the full quota after this request, reset after one interval (exactly:
            # (now + interval) - now can round to more, and t would then jitter by a second)
            return True, int(self.tolerance / interval + EPS), 0.0, interval, now + interval
        ahead = tat - now
        if ahead > self._limit:
            return False, 0, ahead - self.tolerance, ahead, tat
        new_tat = tat + interval
        used = new_tat - now
        # floor of a non-negative value: int() truncates the same way, without math.floor
        remaining = int((self.tolerance + interval - used) / interval + EPS)
        return True, remaining, 0.0, used, new_tat


class LocalBuckets:
    """The TATs of one local limit in one worker, memory bounded by `max_keys`.

    When full, keys already rested are dropped first (that changes no decision); if the table
    is still full of live keys (a flood of distinct keys), the oldest-inserted eighth goes,
    which can only let those keys through earlier, never refuse anyone wrongly."""

    __slots__ = ("gcra", "max_keys", "tats")

    def __init__(self, gcra: Gcra, max_keys: int) -> None:
        self.gcra = gcra
        self.max_keys = max_keys
        self.tats: dict[str, float] = {}

    def peek(self, key: str, now: float) -> Decision:
        return self.gcra.decide(self.tats.get(key, 0.0), now)

    def commit(self, key: str, tat: float, now: float) -> None:
        tats = self.tats
        if key not in tats and len(tats) >= self.max_keys:
            self._make_room(now)
        tats[key] = tat

    def take(self, key: str, now: float) -> Decision:
        d = self.gcra.decide(self.tats.get(key, 0.0), now)
        if d[0]:
            self.commit(key, d[4], now)
        return d

    def _make_room(self, now: float) -> None:
        tats = self.tats
        rested = [k for k, t in tats.items() if t <= now]
        for k in rested:
            del tats[k]
        if len(tats) >= self.max_keys:
            for k in list(islice(tats, max(1, self.max_keys // 8))):
                del tats[k]

    def sweep(self, now: float, budget: int = 2048) -> None:
        """Forget up to `budget` rested keys (called by the worker's sweeper), so memory
        follows the live keys even when the table never fills."""
        tats = self.tats
        if not tats:
            return
        gone = []
        for k, t in tats.items():
            if t <= now:
                gone.append(k)
                if len(gone) >= budget:
                    break
        for k in gone:
            del tats[k]
