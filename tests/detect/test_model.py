"""The learned anomaly model (detect/hst.py, detect/anomaly.py) on hand-made event
sequences, the clock in the events: Half-Space Trees order a planted anomaly above benign
traffic, deterministically for a seed, in fixed memory; as a signal it fires on the planted
subject only and names the features that drove it; other signals' verdicts carry its score."""

from __future__ import annotations

import random

from wardgate.config.detect import DetectionConfig, ModelSignal
from wardgate.detect.anomaly import FEATURES, AnomalyModel
from wardgate.detect.detector import Detector
from wardgate.detect.events import Event
from wardgate.detect.hst import HalfSpaceTrees


def cluster(rng: random.Random) -> list[float]:
    return [min(1.0, max(0.0, rng.gauss(c, 0.05))) for c in (0.3, 0.5, 0.2, 0.1)]


def test_hst_orders_a_planted_point_above_the_cluster() -> None:
    rng = random.Random(3)
    m = HalfSpaceTrees(4, n_trees=20, height=10, window=128, seed=5)
    assert m.score([0.3, 0.5, 0.2, 0.1]) is None  # cold
    for _ in range(600):
        m.learn(cluster(rng))
    benign = [m.score(cluster(rng)) for _ in range(300)]
    planted = [m.score([0.95, 0.5, 0.2, 0.1]), m.score([0.3, 0.5, 0.9, 0.9]),
               m.score([0.8, 0.9, 0.8, 0.7])]
    assert all(b is not None for b in benign) and all(p is not None for p in planted)
    assert min(planted) > sorted(benign)[int(0.99 * len(benign))]  # type: ignore[operator]


def test_hst_is_deterministic_and_its_memory_fixed() -> None:
    a, b = HalfSpaceTrees(3, seed=9), HalfSpaceTrees(3, seed=9)
    sizes = [len(t) for t in a.r] + [len(t) for t in a.l]
    rng = random.Random(1)
    points = [[rng.random() for _ in range(3)] for _ in range(1000)]
    for p in points:
        a.learn(p)
        b.learn(p)
    assert [a.score(p) for p in points[:50]] == [b.score(p) for p in points[:50]]
    assert [len(t) for t in a.r] + [len(t) for t in a.l] == sizes
    assert HalfSpaceTrees(3, seed=10).dim != a.dim


def benign_events(rng: random.Random, subjects: int, seconds: float) -> list[Event]:
    out = []
    for s in range(subjects):
        rate = rng.choice([0.5, 1.0, 2.0, 3.0])
        items = rng.sample(range(10_000), 20)
        net = f"10.{s // 200}.{s % 200}.0/24"
        t = rng.uniform(0, 1 / rate)
        while t < seconds:
            item = str(rng.choice(items))
            status = 404 if rng.random() < 0.03 else 200
            out.append(Event(t, "items", net[:-4] + "9", net, status, "GET", "ok", f"u{s}",
                             f"j{s}", None, None, f"ua{s % 5}", f"/items/{item}", (item,),
                             0.0, rng.randrange(200, 2000)))
            t += rng.expovariate(rate)
    return out


def planted(t0: float) -> list[Event]:
    """A scraper with a stolen account: many distinct items, many misses, three programs."""
    return [Event(t0 + k * 0.03, "items", "10.99.0.9", "10.99.0.0/24",
                  404 if k % 2 else 200, "GET", "ok", "mallory", "jm", None, None,
                  f"ua-x{k % 3}", f"/items/{70_000 + k * 7}", (str(70_000 + k * 7),), 0.0, 90)
            for k in range(64)]


def test_the_model_flags_the_planted_subject_and_no_benign_one() -> None:
    rng = random.Random(11)
    model = AnomalyModel(ModelSignal(), 100_000)
    events = sorted(benign_events(rng, 150, 90.0) + planted(80.0), key=lambda e: e.time)
    found = [f for f in map(model.observe, events) if f is not None]
    assert model.learned > 500 and model.trees.ready
    assert {f.key for f in found} == {"mallory"}, [(f.key, f.features) for f in found]
    f = found[0]
    assert f.kind == "anomaly" and f.score >= 1.0
    assert f.features["model_score"] >= model.cfg.threshold
    names = [x["feature"] for x in f.features["top"]]
    assert set(names) <= set(FEATURES) and len(names) == 3
    assert {"values", "paths", "error_ratio", "user_agents", "requests"} & set(names[:1])
    assert f.features["top"][0]["deviation"] >= model.cfg.min_deviation
    assert "furthest from the population" in f.explain()


def test_the_models_score_orders_the_planted_subject_above_every_benign_window() -> None:
    rng = random.Random(12)
    model = AnomalyModel(ModelSignal(threshold=0.99, min_deviation=1e9), 100_000)
    for e in sorted(benign_events(rng, 150, 60.0), key=lambda e: e.time):
        model.observe(e)
    # score every open benign window, and the planted one at the same request count
    benign_scores = []
    for e in benign_events(random.Random(13), 150, 5.0):
        model.observe(Event(60.0 + e.time, *e[1:]))
    for win in model.table.data.values():
        if win.n >= 2:
            benign_scores.append(model.window_score(win))
    for e in planted(66.0)[:16]:
        model.observe(e)
    mal = model.table.get("mallory")
    assert mal is not None and mal.score is not None
    assert mal.score > max(s for s in benign_scores if s is not None)


def test_bounded_work_and_memory() -> None:
    model = AnomalyModel(ModelSignal(max_per_s=50), 1000)
    for i in range(200_000):  # 200,000 distinct subjects, two requests each, 20,000 a second
        for k in range(2):
            model.observe(Event(i / 20_000 + k * 1e-6, "api", "10.0.0.1", "10.0.0.0/24",
                                sub=f"s{i}"))
    assert len(model.table) <= 1000 and len(model.open) <= 2 * 1000 + 1
    assert model.learned <= 50 * 11 and model.skipped > 0


def test_rule_verdicts_carry_the_models_view() -> None:
    rng = random.Random(14)
    det = Detector(DetectionConfig(enumeration={"max_distinct": 40}))
    verdicts = []
    for e in sorted(benign_events(rng, 120, 60.0) + planted(50.0), key=lambda e: e.time):
        verdicts += det.observe(e)
    enum = [v for v in verdicts if v.kind == "enumeration"]
    assert enum and enum[0].finding.key == "mallory"
    feats = enum[0].finding.features
    assert 0.0 <= feats["model_score"] <= 1.0 and len(feats["model_top"]) == 3
