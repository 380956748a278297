"""Memory stays bounded under 1M distinct subjects: every table of the detector core (all
signals on, the learned model included) stops at `max_keys`, and the process does not grow
once the tables are full (sans-I/O, the clock in the events)."""

from __future__ import annotations

import gc

import psutil

from wardgate.config.detect import DetectionConfig
from wardgate.detect.detector import Detector
from wardgate.detect.events import Event

CAP = 10_000
SUBJECTS = 1_000_000


def events(start: int, stop: int):  # type: ignore[no-untyped-def]
    for i in range(start, stop):
        t = i * 0.0002  # 5,000 new subjects a second
        net = f"10.{(i >> 8) & 255}.{i & 255}.0/24"
        client = net[:-4] + "9"
        if i % 10 == 0:  # a refused token from a new network: no subject
            yield Event(t, "api", client, net, 401, "GET", "bad_signature")
            continue
        sub = f"s{i}"
        n = 6 if i % 100 == 1 else 1  # a few subjects with a window the model learns
        for k in range(n):
            yield Event(t + k * 1e-5, "items", client, net, 404 if k % 2 else 200, "GET",
                        "ok", sub, f"j{i}", None, None, f"ua{i % 7}", f"/items/{i + k}",
                        (str(i + k),), 0.0, 300)


def test_a_million_distinct_subjects_keep_every_table_bounded() -> None:
    det = Detector(DetectionConfig(max_keys=CAP))
    proc = psutil.Process()
    rss: list[int] = []
    for part in range(4):
        lo, hi = part * SUBJECTS // 4, (part + 1) * SUBJECTS // 4
        for ev in events(lo, hi):
            det.observe(ev)
        det.sweep(hi * 0.0002)
        gc.collect()
        rss.append(proc.memory_info().rss)
    sizes = det.sizes()
    assert all(n <= CAP for n in sizes.values()), sizes
    assert {"token_replay", "rate", "enumeration", "error_rate", "anomaly",
            "refused_tokens"} <= set(sizes)
    assert sizes["token_replay"] > CAP // 2  # the tables were used, and are full
    model = det.model
    assert model is not None and len(model.open) <= 2 * CAP + 1 and model.learned > 0
    assert len(det.flags.jti) + len(det.flags.sub) + len(det.flags.net) <= 3 * CAP
    # full after the first quarter: the last three quarters (750,000 more subjects) add
    # no more than noise to the process
    growth = rss[-1] - rss[0]
    assert growth < 24 * 2**20, [r // 2**20 for r in rss]
