"""The metric registry's publication: the worker counts in a list; a reader sees the numbers
once published (by the sweeper, or on its own request through the handshake slots)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from wardgate.observe.aggregate import collect
from wardgate.observe.exposition import render
from wardgate.observe.registry import MetricRegistry, request_publish


def _registry(tmp_path: Path) -> tuple[MetricRegistry, int]:
    reg = MetricRegistry()
    slot = reg.series(reg.family("wardgate_test_total", "counter", "a test counter", ("k",)), "a")
    reg.freeze(str(tmp_path), "w1")
    return reg, slot


def _read(tmp_path: Path) -> int:
    return collect(str(tmp_path), ["w1"]).value("wardgate_test_total", "a")


def test_counts_reach_the_file_when_published(tmp_path: Path) -> None:
    reg, slot = _registry(tmp_path)
    assert reg.values is not None
    reg.values[slot] += 5
    assert _read(tmp_path) == 0  # not yet published: the request path never writes the file
    reg.publish()
    assert _read(tmp_path) == 5
    reg.values[slot] += 2
    reg.close()  # the last numbers go out at exit
    assert _read(tmp_path) == 7


def test_a_reader_gets_fresh_numbers_from_a_live_worker(tmp_path: Path) -> None:
    reg, slot = _registry(tmp_path)
    assert reg.values is not None
    stop = threading.Event()

    def worker() -> None:  # the worker's 20 ms timer, faster here
        while not stop.is_set():
            reg.answer()
            time.sleep(0.001)

    t = threading.Thread(target=worker)
    t.start()
    try:
        for n in range(1, 4):
            reg.values[slot] += 1
            started = time.monotonic()
            request_publish(str(tmp_path), ["w1"], timeout_s=5)
            assert time.monotonic() - started < 2
            assert _read(tmp_path) == n
    finally:
        stop.set()
        t.join()
    reg.close()


def test_a_worker_that_does_not_answer_costs_a_bounded_wait(tmp_path: Path) -> None:
    reg, slot = _registry(tmp_path)
    assert reg.values is not None
    reg.values[slot] += 3
    reg.publish()
    reg.values[slot] += 1  # counted after the last publication; nobody answers
    started = time.monotonic()
    request_publish(str(tmp_path), ["w1", "gone"], timeout_s=0.2)
    assert 0.15 < time.monotonic() - started < 2
    assert _read(tmp_path) == 3  # what it last published
    reg.close()


def test_out_of_range_values_are_clamped_not_fatal(tmp_path: Path) -> None:
    reg, slot = _registry(tmp_path)
    assert reg.values is not None
    reg.values[slot] = 1 << 70
    reg.publish()
    assert _read(tmp_path) == (1 << 64) - 1
    reg.values[slot] = -1
    reg.publish()
    assert _read(tmp_path) == 0
    reg.close()


def test_a_histograms_float_seconds_sum_is_published_in_nanoseconds(tmp_path: Path) -> None:
    """The worker adds each observation's seconds to the sum as a float (no int() per
    request); the file and the exposition carry it exactly, like the integer slots."""
    reg = MetricRegistry()
    fam = reg.family("wardgate_test_seconds", "histogram", "a test histogram", ("k",),
                     bounds=(0.1, 1.0))
    base = reg.series(fam, "a")
    count = reg.series(reg.family("wardgate_test_total", "counter", "after it", ("k",)), "a")
    reg.freeze(str(tmp_path), "w1")
    assert reg.values is not None
    for seconds, bucket in ((0.05, 0), (0.25, 1), (0.5, 1), (3.0, 2)):
        reg.values[base + bucket] += 1
        reg.values[base + 3] += seconds
    reg.values[count] += 4
    reg.publish()
    reg.publish()  # publishing twice does not convert twice
    agg = collect(str(tmp_path), ["w1"])
    assert agg.values["wardgate_test_seconds"][("a",)] == [1, 2, 1, 3_800_000_000]
    assert agg.value("wardgate_test_total", "a") == 4
    text = render(agg)
    assert 'wardgate_test_seconds_sum{k="a"} 3.8' in text
    assert 'wardgate_test_seconds_count{k="a"} 4' in text
