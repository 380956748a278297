"""Passive health: eject a target after consecutive failures, with exponential back-off."""

from __future__ import annotations


class PassiveHealth:
    __slots__ = ("failures", "ejected_until", "ejections", "_max_failures", "_base", "_cap")

    def __init__(self, max_failures: int, ejection_s: float, max_ejection_s: float) -> None:
        self.failures = 0
        self.ejected_until = 0.0
        self.ejections = 0
        self._max_failures = max_failures
        self._base = ejection_s
        self._cap = max_ejection_s

    def healthy(self, now: float) -> bool:
        return now >= self.ejected_until

    def success(self) -> None:
        if self.failures:
            self.failures = 0
        if self.ejections and self.ejected_until:
            # Healthy again after an ejection: the next ejection starts from the base period.
            self.ejections = 0
            self.ejected_until = 0.0

    def failure(self, now: float) -> bool:
        """Record a failure; return True when this failure ejects the target."""
        self.failures += 1
        if self.failures >= self._max_failures and now >= self.ejected_until:
            self.ejected_until = now + min(self._cap, self._base * (2 ** self.ejections))
            self.ejections += 1
            self.failures = 0
            return True
        return False
