"""The learned anomaly model as a signal: per-subject feature vectors over short windows,
scored by Half-Space Trees (hst.py), explained by the features furthest from the population
(no I/O; the event carries the time).

Per subject and `model.window_s` window, from the events alone:

    requests      requests in the window
    paths         distinct paths
    values        distinct `{param}` values
    error_ratio   share of answers >= 400
    networks      distinct networks (/24, /48)
    user_agents   distinct user-agent hashes
    bytes         mean response bytes

each mapped to [0, 1] (log1p against a fixed cap; distinct counts stop at 64). A window is
learned when it closes (a FIFO of open windows, closed by time, O(1) per event), if it held
at least 2 requests; it is scored while it fills, at `min_requests` requests and every
doubling after, so a scraper is judged within its first window, not after it. It fires when
the score reaches `threshold` *and* some feature is at least `min_deviation` robust
deviations (EWMA absolute deviation) above the population's EWMA: the trees rank how unusual
the combination is, the deviation names what is unusual and keeps a rare-but-harmless
combination of ordinary values from firing. `threshold` is a floor: the score must also
pass the learned windows' own scores (scored as they are learned: EWMA mean + `score_k` EWMA
absolute deviations), so the bar follows what the model has seen. Work is bounded: at most
`max_per_s` windows learned or scored a second (beyond, skipped, not queued) and the trees'
size is fixed. Any other signal's finding is annotated with the subject's last model score and its
most deviating features (`annotate`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace
from typing import Any

from wardgate.config.detect import ModelSignal
from wardgate.detect.events import Event
from wardgate.detect.hst import HalfSpaceTrees
from wardgate.detect.table import Bounded
from wardgate.detect.verdict import KEY_SUB, Finding

FEATURES = ("requests", "paths", "values", "error_ratio", "networks", "user_agents", "bytes")
_DISTINCT = 64                       # distinct values counted per window at most
_CAPS = (math.log1p(1000.0), math.log1p(_DISTINCT), math.log1p(_DISTINCT), 1.0,
         math.log1p(16.0), math.log1p(16.0), math.log1p(1e7))
_POP_ALPHA = 0.02
_MIN_DEV = 0.05                      # in [0, 1] feature units: a floor under a too-regular feature
_TOP = 3
_SPAN = 12.0                         # robust deviations across the unit interval (+-6)
_PSEUDO = 8.0                        # pseudo-requests of the population's error ratio


class _Win:
    __slots__ = ("start", "n", "errors", "bytes", "paths", "values", "nets", "uas", "check",
                 "score", "top", "last", "net", "ua")

    def __init__(self, start: float, check: int) -> None:
        self.start = start
        self.n = self.errors = self.bytes = 0
        self.paths: set[str] = set()
        self.values: set[tuple[str, ...]] = set()
        self.nets: set[str] = set()
        self.uas: set[str] = set()
        self.check = check           # the request count of the next scoring
        self.score: float | None = None
        self.top: list[dict[str, Any]] = []
        self.last = self.net = self.ua = ""  # the previous request's (a repeat adds nothing)

    def raw(self) -> tuple[float, ...]:
        n = self.n
        return (float(n), float(len(self.paths)), float(len(self.values)),
                self.errors / n if n else 0.0, float(len(self.nets)), float(len(self.uas)),
                self.bytes / n if n else 0.0)


def vector(raw: tuple[float, ...], prior: float = 0.0) -> list[float]:
    """`raw` in [0, 1]^d. The error ratio is shrunk towards the population's (`prior`) by
    `_PSEUDO` requests: 3 errors in 8 requests says less than 30 in 80."""
    out = [min(1.0, math.log1p(v) / c) for v, c in zip(raw, _CAPS, strict=True)]
    n = raw[0]
    out[3] = (raw[3] * n + _PSEUDO * prior) / (n + _PSEUDO)
    return out


class AnomalyModel:
    kind = "anomaly"
    network_based = False

    def __init__(self, cfg: ModelSignal, max_keys: int) -> None:
        self.cfg = cfg
        self.trees = HalfSpaceTrees(len(FEATURES), n_trees=cfg.trees, height=cfg.height,
                                    window=cfg.reference, seed=cfg.seed)
        self.table: Bounded[str, _Win] = Bounded(max_keys)
        self.open: deque[tuple[float, str, _Win]] = deque()
        self.mean = [0.0] * len(FEATURES)
        self.dev = [0.1] * len(FEATURES)
        self.learned = self.skipped = self.scored = 0
        self._second = -1.0
        self._budget = cfg.max_per_s
        self.score_mean, self.score_dev = 0.0, 0.05

    # -- windows -------------------------------------------------------------------------------
    def _close_until(self, t: float) -> None:
        q, data = self.open, self.table.data
        while q and q[0][0] <= t:
            _, subject, win = q.popleft()
            if data.get(subject) is win:
                del data[subject]
            if win.n >= 2:
                self._learn(win, t)

    def _spend(self, t: float) -> bool:
        """One unit of the model's work (a window learned or scored) within max_per_s."""
        sec = t // 1.0
        if sec != self._second:
            self._second, self._budget = sec, self.cfg.max_per_s
        if self._budget <= 0:
            self.skipped += 1
            return False
        self._budget -= 1
        return True

    def threshold(self) -> float:
        """The score that fires: `threshold`, or the learned windows' scores' EWMA mean plus
        `score_k` EWMA absolute deviations, whichever is higher."""
        return max(self.cfg.threshold,
                   self.score_mean + self.cfg.score_k * max(self.score_dev, 0.005))

    def _learn(self, win: _Win, t: float) -> None:
        if not self._spend(t):
            return
        x = vector(win.raw(), self.mean[3])
        score = self.trees.score(self.standard(x))
        if score is not None:  # the scores of windows as they come: the model's own baseline
            self.score_dev = (1 - _POP_ALPHA) * self.score_dev + _POP_ALPHA * abs(
                score - self.score_mean)
            self.score_mean = (1 - _POP_ALPHA) * self.score_mean + _POP_ALPHA * score
        self.trees.learn(self.standard(x))
        self.learned += 1
        a = _POP_ALPHA
        mean, dev = self.mean, self.dev
        for i, v in enumerate(x):
            dev[i] = (1 - a) * dev[i] + a * abs(v - mean[i])
            mean[i] = (1 - a) * mean[i] + a * v

    def standard(self, x: list[float]) -> list[float]:
        """`x` in the population's robust units, mapped to [0, 1]: 0.5 is the population's
        EWMA, each `_SPAN`-th of the unit interval one EWMA absolute deviation, clipped. The
        trees then split where the population's spread is, whatever a feature's scale."""
        return [min(1.0, max(0.0, 0.5 + (v - m) / (max(d, _MIN_DEV) * _SPAN)))
                for v, m, d in zip(x, self.mean, self.dev, strict=True)]

    def window_score(self, win: _Win) -> float | None:
        """The trees' score of a window as it stands (None while the model is cold)."""
        return self.trees.score(self.standard(vector(win.raw(), self.mean[3])))

    def deviations(self, x: list[float]) -> list[float]:
        return [(v - m) / max(d, _MIN_DEV) for v, m, d in zip(x, self.mean, self.dev,
                                                                strict=True)]

    def explain(self, raw: tuple[float, ...], x: list[float]) -> list[dict[str, Any]]:
        """The features furthest above the population, with their values."""
        z = self.deviations(x)
        order = sorted(range(len(FEATURES)), key=lambda i: -z[i])[:_TOP]
        return [{"feature": FEATURES[i], "value": round(raw[i], 3),
                 "deviation": round(z[i], 1)} for i in order]

    # -- the signal ----------------------------------------------------------------------------
    def observe(self, ev: Event, n: int = 1) -> Finding | None:
        t = ev.time
        self._close_until(t)
        subject = ev.sub or ev.client_id
        if subject is None:
            return None
        cfg = self.cfg
        win = self.table.data.get(subject)
        if win is None:
            win = _Win(t, cfg.min_requests)
            self.table.put(subject, win)
            self.open.append((t + cfg.window_s, subject, win))
            if len(self.open) > 2 * self.table.cap:  # windows evicted from the table
                self._close_until(self.open[0][0])
        win.n += n
        if ev.status >= 400:
            win.errors += n
        win.bytes += ev.size * n
        path = ev.path
        if path != win.last:  # the same resource again adds nothing (the common case)
            win.last = path
            if len(win.paths) < _DISTINCT:
                win.paths.add(path)
            if ev.params and len(win.values) < _DISTINCT:
                win.values.add(ev.params)
        if ev.network is not win.net and len(win.nets) < _DISTINCT:
            win.net = ev.network
            win.nets.add(ev.network)
        if ev.ua is not win.ua and len(win.uas) < _DISTINCT:
            win.ua = ev.ua
            win.uas.add(ev.ua)
        if win.n < win.check:
            return None
        while win.check <= win.n:
            win.check *= 2
        if not self._spend(ev.time):
            return None
        return self._judge(win, subject)

    def _judge(self, win: _Win, subject: str) -> Finding | None:
        score = self.trees.score(self.standard(x := vector(raw := win.raw(), self.mean[3])))
        if score is None:
            return None
        self.scored += 1
        win.score = score
        top = win.top = self.explain(raw, x)
        cfg = self.cfg
        thr = self.threshold()
        if score < thr or top[0]["deviation"] < cfg.min_deviation:
            return None
        named = ", ".join(f"{f['feature']} {f['value']:g} ({f['deviation']:+.1f} dev)"
                          for f in top)
        return Finding(
            self.kind, score / thr, KEY_SUB, subject,
            {"model_score": round(score, 3), "threshold": round(thr, 3), "top": top,
             "window_s": cfg.window_s, "learned": self.learned},
            f"half-space trees score {score:.2f} (threshold {thr:.2f}) for this "
            f"subject's last {win.n} requests; furthest from the population: {named}")

    def annotate(self, f: Finding, ev: Event) -> Finding:
        """Another signal's finding, with the subject's model score and top features."""
        subject = ev.sub or ev.client_id
        win = self.table.data.get(subject) if subject is not None else None
        if win is None or win.n < 2 or not self.trees.ready:
            return f
        raw = win.raw()
        x = vector(raw, self.mean[3])
        win.score = self.trees.score(self.standard(x))
        win.top = self.explain(raw, x)
        return replace(f, features={**f.features, "model_score": round(win.score or 0.0, 3),
                                    "model_top": win.top})
