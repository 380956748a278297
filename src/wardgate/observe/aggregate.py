"""Sum every worker's slots into one view of the gateway, at scrape time.

Each worker (of every generation of this run) leaves `<name>.json` (its layout) and
`<name>.bin` (its slots) in the run's metrics directory. Counters and histograms are summed
over all files, those of exited workers included: a reload or a restarted worker never makes
a monotonic counter go back. Gauges only count workers still alive (`live`), summed or
maximised as their family says.
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

from wardgate.observe.registry import Family


@dataclass
class Aggregate:
    families: dict[str, Family] = field(default_factory=dict)
    #: name -> label values -> summed slot values (one for counters/gauges, the buckets + sum
    #: for a histogram)
    values: dict[str, dict[tuple[str, ...], list[int]]] = field(default_factory=dict)

    def value(self, name: str, *labels: str) -> int:
        return self.values.get(name, {}).get(labels, [0])[0]


def _read(directory: str, name: str) -> tuple[dict, array] | None:
    try:
        with open(os.path.join(directory, name + ".json"), encoding="utf-8") as f:
            layout = json.load(f)
        with open(os.path.join(directory, name + ".bin"), "rb") as f:
            raw = f.read(layout["slots"] * 8)
    except (OSError, ValueError):
        return None
    vals = array("Q")
    vals.frombytes(raw[: len(raw) - len(raw) % 8])
    return layout, vals


def merge_into(agg: Aggregate, layout: dict, vals: array | list[int], alive: bool) -> None:
    for fd in layout["families"]:
        name = fd["name"]
        fam = agg.families.get(name)
        if fam is None:
            fam = Family(name, fd["kind"], fd["help"], tuple(fd["labels"]),
                         tuple(fd["bounds"]), fd.get("mode", "sum"))
            agg.families[name] = fam
            agg.values[name] = {}
        if fam.kind == "gauge" and not alive:
            continue
        width = fam.width()
        out = agg.values[name]
        for labels, slot in fd["series"]:
            key = tuple(labels)
            got = list(vals[slot:slot + width])
            if len(got) < width:
                continue
            have = out.get(key)
            if have is None:
                out[key] = got
            elif fam.kind == "gauge" and fam.mode == "max":
                have[0] = max(have[0], got[0])
            else:
                for i, v in enumerate(got):
                    have[i] += v


def collect(directory: str, live: Iterable[str]) -> Aggregate:
    """Everything in `directory`; `live` names the files of workers still running."""
    alive = set(live)
    agg = Aggregate()
    try:
        names = sorted(n[:-5] for n in os.listdir(directory) if n.endswith(".json"))
    except OSError:
        return agg
    for name in names:
        got = _read(directory, name)
        if got is not None:
            merge_into(agg, got[0], got[1], name in alive)
    return agg
