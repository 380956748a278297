"""What bench/detect_eval.py and bench/login_eval.py share: sending timed requests from real
loopback sources, and turning scored instances into recall, time to detect and precision."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar


class Timed(Protocol):
    @property
    def at(self) -> float: ...  # seconds after the start
    @property
    def source(self) -> str: ...  # the loopback address it is sent from


class Scored(Protocol):
    @property
    def scenario(self) -> str: ...
    @property
    def detected(self) -> float | None: ...  # seconds from its first bad request


T = TypeVar("T", bound=Timed)


def send_timed(sends: Sequence[T], host: str, port: int, timeout: float, threads: int,
               request: Callable[[http.client.HTTPConnection, T], None]) -> float:
    """Send every item at its time (relative to the returned wall-clock start); one thread
    per group of sources, so each source's requests go in order on its own keep-alive
    connection (bound to the source address; one reconnect on a broken one)."""
    start = time.time() + 0.3
    buckets: list[list[T]] = [[] for _ in range(threads)]
    for s in sends:
        buckets[hash(s.source) % threads].append(s)

    def worker(items: list[T]) -> None:
        conns: dict[str, http.client.HTTPConnection] = {}
        for s in items:
            wait = start + s.at - time.time()
            if wait > 0:
                time.sleep(wait)
            for _ in range(2):
                c = conns.get(s.source)
                if c is None:
                    c = conns[s.source] = http.client.HTTPConnection(
                        host, port, timeout=timeout, source_address=(s.source, 0))
                try:
                    request(c, s)
                    c.getresponse().read()
                    break
                except (OSError, http.client.HTTPException):
                    c.close()
                    conns.pop(s.source, None)
        for c in conns.values():
            c.close()

    workers = [threading.Thread(target=worker, args=(b,)) for b in buckets]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return start


def detection_times(instances: int, ttd: list[float]) -> dict[str, Any]:
    """Recall and time to detect (median, max) of `instances`, `ttd` one time per found one."""
    ttd = sorted(ttd)
    return {"instances": instances, "detected": len(ttd),
            "recall": len(ttd) / instances if instances else None,
            "ttd_median_s": ttd[len(ttd) // 2] if ttd else None,
            "ttd_max_s": ttd[-1] if ttd else None}


def scenario_lines(instances: Sequence[Scored], scenarios: Sequence[str]
                   ) -> dict[str, dict[str, Any]]:
    """Per scenario: its instances' recall and time to detect (a negative time counts as 0)."""
    out = {}
    for sc in scenarios:
        insts = [i for i in instances if i.scenario == sc]
        out[sc] = detection_times(len(insts), [max(0.0, i.detected) for i in insts
                                               if i.detected is not None])
    return out


def overall(true_pos: int, false_pos: int, benign: int, flagged: set[str], requests: int
            ) -> dict[str, Any]:
    """Precision over every detection, and the benign subjects flagged."""
    total = true_pos + false_pos
    return {"precision": true_pos / total if total else None, "benign_subjects": benign,
            "benign_flagged": sorted(flagged), "false_positive_rate": len(flagged) / benign,
            "detections": total, "requests": requests}
