"""The metric registry: every series a worker can touch is a preallocated 64-bit slot.

At start-up each feature declares its families (name, help, labels) and asks for the series
it will increment, getting back plain integer slot indices; `freeze()` then maps one flat
array of unsigned 64-bit integers (a file in the run's metrics directory, so the supervisor
reads every worker's numbers at scrape time without asking it anything). On the request path
an increment is `values[i] += n`: no string, no dict of labels, no allocation.

Histograms take len(bounds) + 2 slots: one per bucket (not cumulative: one increment per
observation), the +Inf bucket, and the sum. In the worker's list the sum is float seconds,
as observed (converting each observation to an integer cost more than the rest of the
increment); the mapped file has it in nanoseconds (an integer slot, so the whole array has
one type), converted by `publish`. Cumulative counts and `_count` are computed at scrape
time.

A layout file next to the array describes the slots by family and label values; the
aggregator (observe/aggregate.py) sums series by name and labels across files, so layouts of
different config generations add up by meaning, not by position.

The worker increments a plain list, not the mapped array: an item of a list is read and
written by specialised bytecodes, one of a memoryview through its struct format (~0.1 µs more
per increment, several per request). `publish()` copies the list into the mapped file: from
the sweeper (four times a second, and a last time at exit), and whenever a reader asks, so a
scrape sees every request answered before it. The first two slots are that handshake: a
reader writes a new number into slot 0 (`request_publish`), the worker publishes and writes
it back into slot 1 within ANSWER_INTERVAL_S.
"""

from __future__ import annotations

import json
import mmap
import os
import sys
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

#: OpenTelemetry HTTP semantic conventions' explicit bucket boundaries for
#: http.server.request.duration (seconds)
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

#: slot 0: publication asked for (a reader's number); slot 1: the last number answered
ASKED, ANSWERED = 0, 1
HANDSHAKE_SLOTS = 2
#: how often a worker looks for a reader's request (a 20 ms timer: a scrape waits at most that)
ANSWER_INTERVAL_S = 0.02
_U64_MAX = (1 << 64) - 1

Kind = Literal["counter", "gauge", "histogram"]
#: how a gauge combines across workers: summed over live workers, or their maximum
GaugeMode = Literal["sum", "max"]


@dataclass
class Family:
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]
    bounds: tuple[float, ...] = ()
    mode: GaugeMode = "sum"
    series: dict[tuple[str, ...], int] = field(default_factory=dict)

    def width(self) -> int:
        return len(self.bounds) + 2 if self.kind == "histogram" else 1


class RegistryFrozen(RuntimeError):
    """A series was requested after the slots were mapped (a start-up ordering bug)."""


class MetricRegistry:
    """One per worker. Declare families and series, then `freeze()`; increment `values`."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}
        self._next = HANDSHAKE_SLOTS
        #: the worker's own numbers (what every feature increments), after freeze()
        self.values: list[float] | None = None  # ints, and the histograms' float sums
        self._sums: list[int] = []
        #: the mapped file the supervisor reads, updated by publish()
        self.shared: memoryview | None = None
        self._mm: mmap.mmap | None = None
        self._fd: int | None = None
        #: where the slots were mapped (None: anonymous); features put their files beside them
        self.directory: str | None = None
        self.name = ""

    # -- declaration (start-up) -------------------------------------------------------------
    def family(self, name: str, kind: Kind, help: str, labels: tuple[str, ...] = (),
               bounds: tuple[float, ...] = (), mode: GaugeMode = "sum") -> Family:
        """Declare (or get the already declared) family. Names start with `wardgate_`."""
        fam = self.families.get(name)
        if fam is None:
            if not name.startswith("wardgate_"):
                raise ValueError(f"metric {name!r}: names start with wardgate_")
            fam = Family(name, kind, help, labels, tuple(bounds), mode)
            self.families[name] = fam
        elif fam.kind != kind or fam.labels != labels:
            raise ValueError(f"metric {name!r} declared twice with different shapes")
        return fam

    def series(self, fam: Family, *values: str) -> int:
        """The slot index (a histogram's first bucket) of one label combination."""
        if len(values) != len(fam.labels):
            raise ValueError(f"{fam.name}: expected labels {fam.labels}, got {values}")
        slot = fam.series.get(values)
        if slot is None:
            if self.values is not None:
                raise RegistryFrozen(fam.name)
            slot = self._next
            fam.series[values] = slot
            self._next += fam.width()
        return slot

    # -- mapping ----------------------------------------------------------------------------
    def freeze(self, directory: str | None = None, name: str = "") -> None:
        """Map the slots: into `directory/<name>.bin` (with `<name>.json`, the layout) so the
        supervisor can read them, or anonymous memory when the worker runs alone."""
        size = max(8, self._next * 8)
        self.directory, self.name = directory, name
        if directory is None:
            self._mm = mmap.mmap(-1, size)
        else:
            base = os.path.join(directory, name)
            fd = os.open(base + ".bin", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            os.ftruncate(fd, size)
            self._fd = fd
            self._mm = mmap.mmap(fd, size)
            tmp = base + ".json.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.layout(), f)
            os.replace(tmp, base + ".json")  # the layout appears whole, after the array
        self.shared = memoryview(self._mm).cast("Q")
        self.values = [0] * len(self.shared)
        # where each histogram keeps its sum (float seconds here, nanoseconds when published),
        # as offsets into the published tail
        self._sums = [slot + len(f.bounds) + 1 - HANDSHAKE_SLOTS
                      for f in self.families.values() if f.kind == "histogram"
                      for slot in f.series.values()]
        for i in self._sums:
            self.values[i + HANDSHAKE_SLOTS] = 0.0

    def publish(self) -> None:
        """Copy the worker's numbers into the mapped file (the handshake slots excepted)."""
        shared, vals = self.shared, self.values
        if shared is None or vals is None:
            return
        tail = vals[HANDSHAKE_SLOTS:]
        for i in self._sums:
            tail[i] = int(tail[i] * 1e9)
        try:
            shared[HANDSHAKE_SLOTS:] = array("Q", tail)
        except OverflowError:  # a slot out of uint64's range: clamp rather than stop counting
            shared[HANDSHAKE_SLOTS:] = array("Q", [min(max(v, 0), _U64_MAX) for v in tail])

    def answer(self, before: Callable[[], None] | None = None) -> None:
        """Publish if a reader asked since the last answer (the worker's 20 ms timer);
        `before`: what else the reader will read, written first (the denial ring's buffer)."""
        shared = self.shared
        if shared is not None and shared[ASKED] != shared[ANSWERED]:
            asked = shared[ASKED]
            if before is not None:
                before()
            self.publish()
            shared[ANSWERED] = asked

    def layout(self) -> dict:
        return {"slots": self._next, "families": [
            {"name": f.name, "kind": f.kind, "help": f.help, "labels": list(f.labels),
             "bounds": list(f.bounds), "mode": f.mode,
             "series": [[list(k), v] for k, v in f.series.items()]}
            for f in self.families.values()]}

    def close(self) -> None:
        if self.shared is not None:
            self.publish()
            self.shared.release()
            self.shared = None
        if self._mm is not None:
            self._mm.close()
        if self._fd is not None:
            os.close(self._fd)


def request_publish(directory: str, names: list[str], timeout_s: float = 0.5) -> None:
    """Ask each named worker to publish its numbers, and wait (bounded) until all have: what a
    scrape does first, so it counts every request answered before it. A worker that does not
    answer in time (exiting, stuck) is read as it last published."""
    waiting: dict[int, int] = {}
    try:
        for name in names:
            try:
                fd = os.open(os.path.join(directory, name + ".bin"), os.O_RDWR)
            except OSError:
                continue
            raw = os.pread(fd, 16, 0)
            if len(raw) < 16:
                os.close(fd)
                continue
            asked = (int.from_bytes(raw[:8], sys.byteorder) + 1) & _U64_MAX
            os.pwrite(fd, asked.to_bytes(8, sys.byteorder), 0)
            waiting[fd] = asked
        deadline = time.monotonic() + timeout_s
        while waiting and time.monotonic() < deadline:
            time.sleep(0.002)
            for fd, asked in list(waiting.items()):
                # >=: another reader may have asked again meanwhile (answered covers both)
                if int.from_bytes(os.pread(fd, 8, 8), sys.byteorder) >= asked:
                    del waiting[fd]
                    os.close(fd)
    finally:
        for fd in waiting:
            os.close(fd)
