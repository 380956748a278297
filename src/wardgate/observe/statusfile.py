"""Per-worker JSON status beside the metric slots: what the admin API shows of state that
lives only in the workers (key sets, upstream health). Written from the sweeper when it
changed, replaced atomically; read by the supervisor for the live workers only."""

from __future__ import annotations

import json
import os
from typing import Any


class StatusFile:
    """`<registry name><suffix>` in the run's metrics directory (nothing when anonymous)."""

    __slots__ = ("suffix", "path", "_last")

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.path: str | None = None
        self._last = ""

    def bind(self, directory: str | None, name: str) -> None:
        if directory is not None:
            self.path = os.path.join(directory, name + self.suffix)

    def write(self, doc: dict[str, Any]) -> None:
        if self.path is None:
            return
        text = json.dumps({"pid": os.getpid(), **doc}, sort_keys=True)
        if text == self._last:
            return
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, self.path)
            self._last = text
        except OSError:
            pass  # the admin view shows the previous state; the next sweep tries again


def collect(directory: str, live: set[str], suffix: str) -> list[dict[str, Any]]:
    """The status documents of the live workers (`live`: their metrics file names)."""
    out = []
    for name in sorted(live):
        try:
            with open(os.path.join(directory, name + suffix), encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out
