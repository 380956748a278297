"""Half-Space Trees: a streaming anomaly model over feature vectors in [0, 1]^d (no I/O,
pure Python, deterministic for a seed, memory fixed at construction).

Tan, Ting and Liu, "Fast Anomaly Detection for Streaming Data" (IJCAI 2011). Each tree is a
complete binary tree of `height` levels over a randomly shifted work space (per dimension a
random s in [0, 1], the range s -+ 2 max(s, 1 - s)); every inner node halves the range of a
random dimension. Each node counts the instances that passed through it in the latest window
(`l`) and in the reference window before it (`r`); after every `window` instances the latest
becomes the reference. A point's mass score is, per tree, r * 2^depth at the first node whose
reference mass is below `size_limit` (or at the leaf): points in dense regions get large
scores, points where the reference window had nothing get small ones. `score` maps the mean
over trees to [0, 1], higher meaning more anomalous:
    1 - log2(1 + mass) / log2(1 + window * 2^height).
Before the first reference window is complete the latest window, scaled up, stands in (a
cold start from the population seen so far), once it holds `warm` instances.

Heap layout per tree (node i has children 2i+1 and 2i+2), plain lists: an update or a score is
height steps per tree, no allocation.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


class HalfSpaceTrees:
    __slots__ = ("dims", "n_trees", "height", "window", "size_limit", "warm", "dim", "at",
                 "r", "l", "filled", "windows", "_norm")

    def __init__(self, dims: int, *, n_trees: int = 20, height: int = 9, window: int = 128,
                 seed: int = 17, size_limit: float | None = None, warm: int = 32) -> None:
        if dims < 1 or n_trees < 1 or not 1 <= height <= 16 or window < 2:
            raise ValueError("dims, n_trees >= 1; height in 1..16; window >= 2")
        rng = random.Random(seed)
        self.dims, self.n_trees, self.height, self.window = dims, n_trees, height, window
        self.size_limit = 0.1 * window if size_limit is None else size_limit
        self.warm = min(warm, window)
        inner, nodes = (1 << height) - 1, (1 << (height + 1)) - 1
        self.dim: list[list[int]] = []
        self.at: list[list[float]] = []
        for _ in range(n_trees):
            lo, hi = [0.0] * dims, [0.0] * dims
            for q in range(dims):
                s = rng.random()
                span = 2.0 * max(s, 1.0 - s)
                lo[q], hi[q] = s - span, s + span
            dim, at = [0] * inner, [0.0] * inner
            self._build(rng, 0, lo, hi, dim, at, inner)
            self.dim.append(dim)
            self.at.append(at)
        self.r: list[list[float]] = [[0.0] * nodes for _ in range(n_trees)]
        self.l: list[list[float]] = [[0.0] * nodes for _ in range(n_trees)]
        self.filled = 0    # instances in the latest window
        self.windows = 0   # windows completed (0: no reference yet)
        self._norm = math.log2(1.0 + window * (1 << height))

    def _build(self, rng: random.Random, node: int, lo: list[float], hi: list[float],
               dim: list[int], at: list[float], inner: int) -> None:
        # iterative over a stack: depth-first, each node with its own copy of the ranges
        stack = [(node, lo, hi)]
        while stack:
            i, lo_, hi_ = stack.pop()
            if i >= inner:
                continue
            q = rng.randrange(self.dims)
            mid = (lo_[q] + hi_[q]) / 2.0
            dim[i], at[i] = q, mid
            left_hi = list(hi_)
            left_hi[q] = mid
            right_lo = list(lo_)
            right_lo[q] = mid
            stack.append((2 * i + 2, right_lo, hi_))
            stack.append((2 * i + 1, lo_, left_hi))

    def learn(self, x: Sequence[float]) -> None:
        """Count `x` in the latest window (every node on its path, in every tree)."""
        h = self.height
        for t in range(self.n_trees):
            dim, at, mass = self.dim[t], self.at[t], self.l[t]
            i = 0
            mass[0] += 1.0
            for _ in range(h):
                i = 2 * i + 1 if x[dim[i]] < at[i] else 2 * i + 2
                mass[i] += 1.0
        self.filled += 1
        if self.filled >= self.window:
            self.r, self.l = self.l, self.r
            for mass in self.l:
                for j in range(len(mass)):
                    mass[j] = 0.0
            self.filled = 0
            self.windows += 1

    @property
    def ready(self) -> bool:
        return self.windows > 0 or self.filled >= self.warm

    def mass(self, x: Sequence[float]) -> float:
        """The mean over trees of r * 2^depth at the point's terminal node."""
        if self.windows > 0:
            ref, scale = self.r, 1.0
        else:
            ref, scale = self.l, self.window / max(1, self.filled)
        limit = self.size_limit / scale
        h = self.height
        total = 0.0
        for t in range(self.n_trees):
            dim, at, m = self.dim[t], self.at[t], ref[t]
            i = k = 0
            while k < h and m[i] >= limit:
                i = 2 * i + 1 if x[dim[i]] < at[i] else 2 * i + 2
                k += 1
            total += m[i] * (1 << k)
        return total * scale / self.n_trees

    def score(self, x: Sequence[float]) -> float | None:
        """Anomaly in [0, 1] (higher: fewer like it in the reference window); None while
        the model is cold."""
        if not self.ready:
            return None
        return max(0.0, 1.0 - math.log2(1.0 + self.mass(x)) / self._norm)
