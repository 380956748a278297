"""Key sets as metrics and as a status file the admin API reads.

Each worker fetches its providers' keys itself, so what a worker holds is what it verifies
with. From the worker's sweeper (never per request) this writes, per provider, gauges of the
number of keys and the time of the last good fetch, and the fetch counters; and, when it
changed, `<name>.keys` in the run's metrics directory: JSON with each key's kid and alg (no
key material), the fetch times, failures and the last error.
"""

from __future__ import annotations

from typing import Any

from wardgate.observe.http import GatewayMetrics
from wardgate.observe.statusfile import StatusFile
from wardgate.observe.statusfile import collect as collect_status

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
        status = self.providers.status()
        counters = self.providers.counters
        for p, (n_slot, t_slot, fetch_slots) in self.slots.items():
            st = status[p]
            v[n_slot] = len(st["keys"])
            v[t_slot] = int(st["fetched_at"] or 0)
            for result, slot in fetch_slots.items():
                v[slot] = counters.get(f"{p}.{result}", 0)
        self.file.write({"providers": status})


def collect(directory: str, live: set[str]) -> dict[str, list[dict[str, Any]]]:
    """provider -> the key-set status of each live worker (`live`: metrics file names)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for doc in collect_status(directory, live, SUFFIX):
        for provider, st in doc.get("providers", {}).items():
            out.setdefault(provider, []).append({"pid": doc.get("pid"), **st})
    return out
