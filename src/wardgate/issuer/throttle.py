"""Login throttling (sans-I/O; the clock is passed in).

Each key (a username, a client address) counts recent failures. After `free` failures every
further attempt must wait base * 2^(extra-1), capped at `max_delay`: a growing delay rather than
a lockout, so an attacker cannot keep a user locked out, and a key with no failure for
`forget_after` seconds starts over.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Entry:
    failures: int = 0
    next_allowed: float = 0.0
    last_failure: float = 0.0


class Throttle:
    def __init__(self, *, free: int, base_delay: float, max_delay: float,
                 forget_after: float, max_entries: int = 100_000) -> None:
        self.free = free
        self.base = base_delay
        self.max = max_delay
        self.forget_after = forget_after
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}

    def retry_after(self, key: str, now: float) -> float:
        """Seconds to wait before `key` may try again; 0 when allowed now."""
        e = self._entries.get(key)
        if e is None:
            return 0.0
        if now - e.last_failure >= self.forget_after:
            del self._entries[key]
            return 0.0
        return max(0.0, e.next_allowed - now)

    def failure(self, key: str, now: float) -> None:
        e = self._entries.get(key)
        if e is None or now - e.last_failure >= self.forget_after:
            if len(self._entries) >= self.max_entries:
                self._evict(now)
            e = self._entries[key] = _Entry()
        e.failures += 1
        e.last_failure = now
        extra = e.failures - self.free
        if extra > 0:
            delay = min(self.max, self.base * 2 ** min(extra - 1, 32))
            e.next_allowed = now + delay

    def success(self, key: str) -> None:
        self._entries.pop(key, None)

    def _evict(self, now: float) -> None:
        # Bounded memory under a flood of distinct keys: drop the stale ones, then the oldest.
        stale = [k for k, e in self._entries.items() if now - e.last_failure >= self.forget_after]
        for k in stale:
            del self._entries[k]
        if len(self._entries) >= self.max_entries:
            oldest = sorted(self._entries, key=lambda k: self._entries[k].last_failure)
            for k in oldest[: len(oldest) // 10 + 1]:
                del self._entries[k]
