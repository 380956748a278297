"""Recent detections: a bounded ring of JSON records per worker, read by the admin listener.

Like denials.py: a worker writes each verdict's record (wardgate.detect.Verdict.record) into
its ring beside its metrics (`<name>.detections`); the supervisor reads every worker's ring at
request time. A record longer than its slot has its `features` dropped (flagged by
`"truncated": true`), never cut mid-JSON. Verdicts are rare (one per signal and key per
cooldown), so a json.dumps each is affordable.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from wardgate.observe.ringfile import close_ring, open_ring, read_rings

CAPACITY = 256
SLOT = 1024
_HEAD = struct.Struct("<Q")   # records written so far
_SEQ = struct.Struct("<QH")   # sequence number (written last), JSON length
SUFFIX = ".detections"
SIZE = _HEAD.size + CAPACITY * SLOT
_DATA = SLOT - _SEQ.size


class DetectionRing:
    """The writing side, one per worker (anonymous memory when there is no directory)."""

    __slots__ = ("_mm", "_fd", "_n")

    def __init__(self, directory: str | None = None, name: str = "") -> None:
        self._mm, self._fd = open_ring(directory, name, SUFFIX, SIZE)
        self._n = 0

    def add(self, record: dict[str, Any]) -> None:
        raw = json.dumps(record, separators=(",", ":"), default=str).encode()
        if len(raw) > _DATA:
            raw = json.dumps({**record, "features": {}, "truncated": True},
                             separators=(",", ":"), default=str).encode()[:_DATA]
        n = self._n + 1
        off = _HEAD.size + (n - 1) % CAPACITY * SLOT
        mm = self._mm
        _SEQ.pack_into(mm, off, 0, 0)  # a reader copying now sees the record as torn
        mm[off + _SEQ.size:off + _SEQ.size + len(raw)] = raw
        _SEQ.pack_into(mm, off, n, len(raw))
        _HEAD.pack_into(mm, 0, n)
        self._n = n

    def read(self) -> list[dict[str, Any]]:
        return read_ring(self._mm)

    def close(self) -> None:
        close_ring(self._mm, self._fd)


def read_ring(buf: Any) -> list[dict[str, Any]]:
    """The whole records of one ring, oldest first."""
    if len(buf) < SIZE:
        return []
    (written,) = _HEAD.unpack_from(buf, 0)
    out = []
    for n in range(max(1, written - CAPACITY + 1), written + 1):
        off = _HEAD.size + (n - 1) % CAPACITY * SLOT
        raw = bytes(buf[off:off + SLOT])
        seq, length = _SEQ.unpack_from(raw, 0)
        if seq != n or _SEQ.unpack_from(buf, off)[0] != n or length > _DATA:
            continue  # being rewritten (or already overwritten by a newer record)
        try:
            out.append(json.loads(raw[_SEQ.size:_SEQ.size + length]))
        except ValueError:
            continue
    return out


def collect(directory: str, limit: int = 100) -> list[dict[str, Any]]:
    """The newest `limit` detections over every worker's ring (exited workers' too)."""
    records = read_rings(directory, SUFFIX, SIZE, read_ring)
    records.sort(key=lambda r: r.get("time", 0), reverse=True)
    return records[:limit]
