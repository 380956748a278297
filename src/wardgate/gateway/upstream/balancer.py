"""Load-balancing policies, registered by short name. Sans-I/O.

Each policy picks among the currently healthy targets; `exclude` lets a retry avoid the
target that just failed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from hashlib import blake2b
from typing import Any, Protocol


class Weighted(Protocol):
    weight: int
    active: int


class Balancer(Protocol):
    def pick(self, healthy: Sequence[Weighted], exclude: object = None) -> Weighted | None: ...


class SmoothRoundRobin:
    """Smooth weighted round-robin: spreads a target's turns evenly (as nginx does)."""

    def __init__(self) -> None:
        self._current: dict[int, int] = {}

    def pick(self, healthy: Sequence[Weighted], exclude: object = None) -> Weighted | None:
        if len(healthy) == 1:
            t = healthy[0]
            return None if t is exclude else t
        best = None
        total = 0
        cur = self._current
        for t in healthy:
            if t is exclude:
                continue
            k = id(t)
            c = cur.get(k, 0) + t.weight
            cur[k] = c
            total += t.weight
            if best is None or c > cur[id(best)]:
                best = t
        if best is not None:
            cur[id(best)] -= total
        return best


class LeastConnections:
    """Fewest in-flight requests per unit of weight; ties broken round-robin."""

    def __init__(self) -> None:
        self._rr = 0

    def pick(self, healthy: Sequence[Weighted], exclude: object = None) -> Weighted | None:
        best = None
        best_score = 0.0
        n = len(healthy)
        self._rr += 1
        for i in range(n):
            t = healthy[(self._rr + i) % n]
            if t is exclude:
                continue
            score = t.active / t.weight
            if best is None or score < best_score:
                best, best_score = t, score
        return best


def stable_hash(data: bytes) -> int:
    """A 64-bit hash that every worker and every run agrees on (Python's hash() is salted)."""
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


class HashRing:
    """Consistent hashing (a ring of `points_per_weight` points per unit of weight per target).

    A key maps to the first point clockwise of its hash whose target is usable; when a target
    leaves, only the keys that were on its points move (to the next target on the ring), about
    1/n of them, and they come back when it returns.
    """

    def __init__(self, targets: Sequence[Any], points_per_weight: int = 100) -> None:
        points = []
        for t in targets:
            name = t.url.encode()
            for i in range(points_per_weight * t.weight):
                points.append((stable_hash(name + b"#%d" % i), t))
        points.sort(key=lambda p: p[0])
        self._hashes = [h for h, _ in points]
        self._targets = [t for _, t in points]
        self.distinct = len(targets)

    def lookup(self, key_hash: int, usable: Callable[[Any], bool]) -> Any:
        """The key's target, skipping (clockwise) targets that `usable` refuses."""
        hashes, targets = self._hashes, self._targets
        n = len(hashes)
        i = bisect_left(hashes, key_hash)
        refused: set[int] = set()
        for k in range(n):
            t = targets[(i + k) % n]
            if id(t) in refused:
                continue
            if usable(t):
                return t
            refused.add(id(t))
            if len(refused) >= self.distinct:
                break
        return None


BALANCERS: dict[str, type] = {"round_robin": SmoothRoundRobin, "least_conn": LeastConnections}
