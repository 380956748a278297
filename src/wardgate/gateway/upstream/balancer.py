"""Load-balancing policies, registered by short name. Sans-I/O.

Each policy picks among the currently healthy targets; `exclude` lets a retry avoid the
target that just failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


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


BALANCERS: dict[str, type] = {"round_robin": SmoothRoundRobin, "least_conn": LeastConnections}
