"""The per-subject error-rate signal (detect/error_rate.py) on hand-made event sequences,
the clock in the events: a subject's errors far above its own learned baseline fire, its
usual error share does not, a probing bucket is not learned, a new subject starts from the
population's prior."""

from __future__ import annotations

import random

from wardgate.config.detect import DetectionConfig, ErrorSignal
from wardgate.detect.detector import Detector
from wardgate.detect.error_rate import ErrorRate
from wardgate.detect.events import Event
from wardgate.detect.verdict import KEY_SUB

CFG = ErrorSignal(bucket_s=10, min_errors=10, min_ratio=0.5, k=4, alpha=0.2, min_bucket=5)


def req(t: float, status: int = 200, sub: str = "alice", outcome: str = "ok") -> Event:
    return Event(t, "api", "10.0.0.1", "10.0.0.0/24", status, "GET", outcome, sub, "j-" + sub)


def steady(sig: ErrorRate, sub: str, seconds: float, rate: float, error_share: float,
           start: float = 0.0, seed: int = 1) -> list[object]:
    rng = random.Random(seed)
    found = []
    t = start
    while t < start + seconds:
        f = sig.observe(req(t, 404 if rng.random() < error_share else 200, sub))
        if f is not None:
            found.append(f)
        t += 1 / rate
    return found


def test_errors_far_above_the_subjects_own_baseline_fire() -> None:
    sig = ErrorRate(CFG, 1000)
    assert steady(sig, "alice", 300, 2.0, 0.05) == []
    st = sig.table.get("alice")
    assert st is not None and st.buckets >= 25 and st.mean < 0.15
    # probing: 15 requests in 3 s, all answered 403
    found = [sig.observe(req(300.0 + i * 0.2, 403)) for i in range(15)]
    hits = [f for f in found if f is not None]
    assert hits, "a probing burst of errors was not detected"
    first = hits[0]
    assert first.kind == "error_rate" and first.key_type == KEY_SUB and first.key == "alice"
    assert first.score >= 1.0 and first.features["errors"] == 10
    assert first.features["error_ratio"] >= 0.5 and first.features["learned_buckets"] >= 25
    assert "learned error ratio" in first.explain()


def test_a_subject_whose_normal_is_many_errors_is_not_flagged_for_it() -> None:
    # a client that polls for resources that mostly do not exist yet: 60 % 404s, always
    sig = ErrorRate(CFG, 1000)
    assert steady(sig, "poller", 120, 3.0, 0.6) != []  # the cold start fires (prior 5 %) ...
    sig2 = ErrorRate(CFG, 1000)
    sig2.pop_mean, sig2.pop_dev = 0.6, 0.1            # ... a population like it does not
    assert steady(sig2, "poller", 600, 3.0, 0.6, seed=2) == []
    st = sig2.table.get("poller")
    assert st is not None and 0.5 < st.mean < 0.7


def test_a_probing_bucket_is_not_learned_as_normal() -> None:
    sig = ErrorRate(CFG, 1000)
    steady(sig, "alice", 200, 2.0, 0.0)
    before = sig.table.get("alice").mean  # type: ignore[union-attr]
    for b in range(3):  # three buckets in a row of all errors
        for i in range(20):
            sig.observe(req(200.0 + b * 10 + i * 0.5, 404))
    sig.observe(req(231.0))  # closes the last bucket
    st = sig.table.get("alice")
    assert st is not None
    assert st.mean < before + 0.5  # clipped: three all-error buckets did not make 100 % normal
    hits = [sig.observe(req(240.0 + i * 0.2, 404)) for i in range(12)]
    assert any(h is not None for h in hits), "probing again, still detected"


def test_cold_start_uses_the_population_prior() -> None:
    sig = ErrorRate(CFG, 1000)
    for u in range(50):
        steady(sig, f"user{u}", 60, 1.0, 0.02, seed=u)
    assert sig.pop_mean < 0.1
    # a subject never seen before, whose first requests are all errors
    hits = [sig.observe(req(100.0 + i * 0.1, 404, sub="new")) for i in range(10)]
    assert hits[-1] is not None and hits[-1].features["learned_buckets"] == 0
    assert all(h is None for h in hits[:-1])  # min_errors: not before the tenth


def test_below_min_errors_nothing_fires() -> None:
    sig = ErrorRate(CFG, 1000)
    assert all(sig.observe(req(i * 0.1, 500)) is None for i in range(9))


def test_the_detectors_own_refusals_are_not_errors_of_the_subject() -> None:
    sig = ErrorRate(CFG, 1000)
    assert all(sig.observe(req(i * 0.1, 403, outcome="detection_denied")) is None
               for i in range(50))
    assert all(sig.observe(req(5 + i * 0.1, 401, outcome="step_up")) is None
               for i in range(50))


def test_through_the_detector_with_allow_lists() -> None:
    det = Detector(DetectionConfig(allow_subjects=["batch"],
                                   errors={"bucket_s": 10, "min_errors": 10}))
    verdicts = []
    for i in range(20):
        verdicts += det.observe(req(i * 0.1, 404, sub="batch"))
    assert verdicts == []
    for i in range(20):
        verdicts += det.observe(req(i * 0.1, 404, sub="mallory"))
    assert [v.kind for v in verdicts] == ["error_rate"]  # one verdict per cooldown
    assert det.flags.sub["mallory"].kind == "error_rate"
