"""Upstream resilience as metrics and as a status file the admin API reads.

The breaker and each target's passive health live in every worker (each balances on its own
view). From the worker's sweeper (never per request) this copies their totals into counters —
retries taken and refused by the retry budget, requests refused by the breaker's limits,
ejections per target — and gauges of requests in flight; and writes `<name>.upstreams` with
each cluster's snapshot (breaker counters, every target's state, ejection, share, window).
"""

from __future__ import annotations

from typing import Any

from wardgate.observe.http import GatewayMetrics
from wardgate.observe.statusfile import StatusFile
from wardgate.observe.statusfile import collect as collect_status

SUFFIX = ".upstreams"


class UpstreamMetrics:
    """Registered on a worker's GatewayMetrics for its clusters."""

    def __init__(self, metrics: GatewayMetrics, clusters: list[Any]) -> None:
        reg = metrics.registry
        retries = reg.family("wardgate_upstream_retries_total", "counter",
                             "Retries by the retry budget's decision", ("upstream", "result"))
        refused = reg.family("wardgate_upstream_overflow_total", "counter",
                             "Requests answered 503 by the circuit breaker, by the limit hit",
                             ("upstream", "limit"))
        active = reg.family("wardgate_upstream_requests_active", "gauge",
                            "Requests in flight to the upstream", ("upstream",))
        ejections = reg.family("wardgate_upstream_target_ejections_total", "counter",
                               "Ejections of a target by outlier detection (per worker, summed)",
                               ("upstream", "target"))
        self.clusters = clusters
        self.slots = [
            (c, reg.series(retries, c.name, "allowed"), reg.series(retries, c.name, "denied"),
             reg.series(refused, c.name, "max_requests"),
             reg.series(refused, c.name, "max_pending"), reg.series(active, c.name),
             [(t, reg.series(ejections, c.name, t.url)) for t in c.targets])
            for c in clusters]
        self.registry = reg
        self.file = StatusFile(SUFFIX)
        self.values: Any = None
        metrics.on_bind(self._bind)
        metrics.on_sample(self.sample)

    def _bind(self, values: Any) -> None:
        self.values = values
        self.file.bind(self.registry.directory, self.registry.name)

    def sample(self, now: float) -> None:
        v = self.values
        if v is None:
            return
        for c, allowed, denied, max_req, max_pend, act, targets in self.slots:
            br = c.breaker
            v[allowed] = br.retries
            v[denied] = br.retries_denied
            v[max_req] = br.rejected_requests
            v[max_pend] = br.rejected_pending
            v[act] = br.active
            for t, slot in targets:
                v[slot] = t.health.total_ejections
        self.file.write({"upstreams": [_rounded(c.snapshot(now)) for c in self.clusters]})


def _rounded(snap: dict[str, Any]) -> dict[str, Any]:
    # Times to a tenth of a second, so an unchanged state is not rewritten every sweep.
    for t in snap["targets"]:
        t["ejected_for_s"] = round(t["ejected_for_s"], 1)
        t["share"] = round(t["share"], 2)
    return snap


def collect(directory: str, live: set[str]) -> dict[str, list[dict[str, Any]]]:
    """upstream -> the snapshot of each live worker (`live`: metrics file names)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for doc in collect_status(directory, live, SUFFIX):
        for snap in doc.get("upstreams", []):
            out.setdefault(snap["name"], []).append({"pid": doc.get("pid"), **snap})
    return out
