"""A subject's error rate far above its own learned baseline (no I/O; the event carries the
time).

Per subject, per `bucket_s`: requests and errors (a status >= 400, except the detector's own
refusals, which would feed back). The baseline is an EWMA of the subject's error ratio per
bucket and an EWMA of its absolute deviations (a robust, MAD-like spread); a bucket is learned
clipped to mean + 3 spreads, so a probing bucket does not teach that probing is normal, and
only when it holds `min_bucket` requests (a ratio of 1 of 2 says little). A new subject
starts from the population's baseline (the cold-start prior: the same EWMAs over every
subject's learned buckets). Fires, while the bucket is still filling, once it holds
`min_errors` errors and its ratio passes max(`min_ratio`, mean + k * s), s the largest of the
learned spread, the sampling noise of a ratio over the bucket's requests so far
(sqrt(mean (1 - mean) / n)) and 0.05.
"""

from __future__ import annotations

import math

from wardgate.config.detect import ErrorSignal
from wardgate.detect.baseline import learn_clipped
from wardgate.detect.events import Event
from wardgate.detect.table import Bounded
from wardgate.detect.verdict import KEY_SUB, Finding

#: auth outcomes of the detector's own refusals: not the subject's errors
_OWN = frozenset(("detection_denied", "step_up"))
_MIN_SPREAD = 0.05
_POP_ALPHA = 0.01


class _Errors:
    __slots__ = ("start", "requests", "errors", "mean", "dev", "buckets")

    def __init__(self, start: float, mean: float, dev: float) -> None:
        self.start = start
        self.requests = 0
        self.errors = 0
        self.mean = mean
        self.dev = dev
        self.buckets = 0


class ErrorRate:
    kind = "error_rate"
    network_based = False

    def __init__(self, cfg: ErrorSignal, max_keys: int) -> None:
        self.cfg = cfg
        self.table: Bounded[str, _Errors] = Bounded(max_keys)
        self.pop_mean = 0.05  # before any subject's bucket: one error in twenty
        self.pop_dev = 0.05

    def threshold(self, st: _Errors, n: int) -> float:
        """The ratio that fires after `n` requests of the bucket: the spread is at least the
        sampling noise of a ratio over n requests (a binomial's), so an early, small part of
        a bucket does not fire on chance."""
        m = st.mean
        noise = math.sqrt(m * (1.0 - m) / n) if 0.0 < m < 1.0 else 0.0
        return max(self.cfg.min_ratio, m + self.cfg.k * max(st.dev, noise, _MIN_SPREAD))

    def _close(self, st: _Errors, t: float) -> None:
        cfg = self.cfg
        if st.requests >= cfg.min_bucket:
            st.mean, st.dev, clipped = learn_clipped(st.mean, st.dev, st.errors / st.requests,
                                                     cfg.alpha, _MIN_SPREAD)
            st.buckets += 1
            self.pop_dev = (1 - _POP_ALPHA) * self.pop_dev + _POP_ALPHA * abs(
                clipped - self.pop_mean)
            self.pop_mean = (1 - _POP_ALPHA) * self.pop_mean + _POP_ALPHA * clipped
        st.start += (t - st.start) // cfg.bucket_s * cfg.bucket_s
        st.requests = st.errors = 0

    def observe(self, ev: Event, n: int = 1) -> Finding | None:
        subject = ev.sub or ev.client_id
        if subject is None:
            return None
        t = ev.time
        st = self.table.data.get(subject)
        if st is None:
            st = _Errors(t, self.pop_mean, self.pop_dev)
            self.table.put(subject, st)
        elif t >= st.start + self.cfg.bucket_s:
            self._close(st, t)
        st.requests += n
        if ev.status < 400 or ev.outcome in _OWN:
            return None
        st.errors += n
        if st.errors < self.cfg.min_errors:
            return None
        ratio = st.errors / st.requests
        thr = self.threshold(st, st.requests)
        if ratio < thr:
            return None
        return Finding(
            self.kind, ratio / thr, KEY_SUB, subject,
            {"errors": st.errors, "requests": st.requests, "error_ratio": round(ratio, 3),
             "bucket_s": self.cfg.bucket_s, "baseline_mean": round(st.mean, 3),
             "baseline_dev": round(st.dev, 3), "threshold": round(thr, 3),
             "learned_buckets": st.buckets, "status": ev.status},
            f"{st.errors} errors in {st.requests} requests ({ratio:.0%}) within "
            f"{self.cfg.bucket_s:g} s against a learned error ratio of {st.mean:.1%} +- "
            f"{st.dev:.1%} (threshold {thr:.0%})")
