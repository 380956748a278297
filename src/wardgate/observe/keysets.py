"""Key sets as metrics and as a status file the admin API reads.

Each worker fetches its providers' keys itself, so what a worker holds is what it verifies
with. From the worker's sweeper (never per request) this writes, per provider, gauges of the
number of keys and the time of the last good fetch, and the fetch counters; and, when it
changed, `<name>.keys` in the run's metrics directory: JSON with each key's kid and alg (no
key material), the fetch times, failures and the last error.
"""

from __future__ import annotations

import json
import os
from typing import Any

from wardgate.observe.http import GatewayMetrics

SUFFIX = ".keys"
#: the key sources' counters (auth/sources.py), exported as the `result` label
FETCH_RESULTS = ("ok", "load_ok", "not_modified", "error", "kid_refetch",
                 "kid_refetch_suppressed", "stale_dropped")


class KeySetMetrics:
    """Registered on a worker's GatewayMetrics for its ProviderRegistry."""

    def __init__(self, metrics: GatewayMetrics, providers: Any) -> None:
        reg = metrics.registry
        keys = reg.family("wardgate_keyset_keys", "gauge", "Keys in a provider's key set "
                          "(max over workers)", ("provider",), mode="max")
        fetched = reg.family("wardgate_keyset_last_success_timestamp_seconds", "gauge",
                             "Unix time of the newest good key-set fetch (max over workers)",
                             ("provider",), mode="max")
        fetches = reg.family("wardgate_keyset_fetches_total", "counter",
                             "Key-set loads and fetches by result", ("provider", "result"))
        self.providers = providers
        self.slots = {p: (reg.series(keys, p), reg.series(fetched, p),
                          {r: reg.series(fetches, p, r) for r in FETCH_RESULTS})
                      for p in providers.sources}
        self.registry = reg
        self.path: str | None = None
        self._last = ""
        self.values: Any = None
        metrics.on_bind(self._bind)
        metrics.on_sample(self.sample)

    def _bind(self, values: Any) -> None:
        self.values = values
        reg = self.registry
        if reg.directory is not None:
            self.path = os.path.join(reg.directory, reg.name + SUFFIX)

    def sample(self) -> None:
        v = self.values
        if v is None:
            return
        status = self.providers.status()
        counters = self.providers.counters
        for p, (n_slot, t_slot, fetch_slots) in self.slots.items():
            st = status[p]
            v[n_slot] = len(st["keys"])
            v[t_slot] = int(st["fetched_at"] or 0)
            for result, slot in fetch_slots.items():
                v[slot] = counters.get(f"{p}.{result}", 0)
        if self.path is not None:
            self._write(status)

    def _write(self, status: dict[str, Any]) -> None:
        text = json.dumps({"pid": os.getpid(), "providers": status}, sort_keys=True)
        if text == self._last:
            return
        tmp = self.path + ".tmp"  # type: ignore[operator]
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, self.path)  # type: ignore[arg-type]
            self._last = text
        except OSError:
            pass  # the admin view shows the previous state; the next sweep tries again


def collect(directory: str, live: set[str]) -> dict[str, list[dict[str, Any]]]:
    """provider -> the key-set status of each live worker (`live`: metrics file names)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(live):
        try:
            with open(os.path.join(directory, name + SUFFIX), encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        for provider, st in doc.get("providers", {}).items():
            out.setdefault(provider, []).append({"pid": doc.get("pid"), **st})
    return out
