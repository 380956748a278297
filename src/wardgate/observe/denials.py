"""Recent denials: a bounded ring of fixed-size records per worker, read by the admin listener.

A worker writes a record when it refuses a request (401, 403, 429, or an auth outcome that
is a refusal), beside its metrics in the run's metrics directory (`<name>.denials`), so the
supervisor reads every worker's ring at request time without asking the workers anything.
Denials are the error path, so a `struct.pack_into` each is affordable even under a flood;
successes never touch the ring.

Each record has a sequence number written last (and zeroed first): a reader that sees the
same non-zero sequence before and after copying a record knows the copy is whole. Strings are
truncated to their field (route names and client addresses are bounded by the config and the
socket; outcomes are the access log's codes).

A refusal only appends its fields to a bounded buffer (`add`); the worker writes the buffer
into the ring (`flush`) from its sweeper and before it answers a scrape or the admin's ask,
so a flood of refused requests costs one tuple each, and a flush at most CAPACITY records.
"""

from __future__ import annotations

import struct
from collections import Counter, deque
from typing import Any

from wardgate.observe.ringfile import close_ring, open_ring, read_rings

CAPACITY = 256
# seq, unix time, status, route, outcome, client address, sub_hash
_RECORD = struct.Struct("<QdH64s40s46s32s")
_HEAD = struct.Struct("<Q")  # records written so far (the next index is this % CAPACITY)
_SEQ = struct.Struct("<Q")
SUFFIX = ".denials"
SIZE = _HEAD.size + CAPACITY * _RECORD.size


class DenialRing:
    """The writing side, one per worker."""

    __slots__ = ("_mm", "_fd", "_n", "_pending")

    def __init__(self, directory: str | None = None, name: str = "") -> None:
        self._mm, self._fd = open_ring(directory, name, SUFFIX, SIZE)
        self._n = 0
        # older records beyond CAPACITY would be overwritten at once: the buffer drops them
        self._pending: deque[tuple[float, int, str, str, str, str | None]] = \
            deque(maxlen=CAPACITY)

    def add(self, when: float, status: int, route: str, outcome: str, client: str,
            sub_hash: str | None) -> None:
        """Record a refusal; it reaches the ring on the next flush."""
        self._pending.append((when, status, route, outcome, client, sub_hash))

    def flush(self) -> None:
        """Write the buffered records into the ring, oldest first."""
        pending = self._pending
        while pending:
            self._write(*pending.popleft())

    def _write(self, when: float, status: int, route: str, outcome: str, client: str,
               sub_hash: str | None) -> None:
        n = self._n + 1
        off = _HEAD.size + (n - 1) % CAPACITY * _RECORD.size
        mm = self._mm
        _SEQ.pack_into(mm, off, 0)  # a reader copying now sees the record as torn
        _RECORD.pack_into(mm, off, 0, when, status, route.encode()[:64],
                          outcome.encode()[:40], client.encode()[:46],
                          (sub_hash or "").encode()[:32])
        _SEQ.pack_into(mm, off, n)
        _HEAD.pack_into(mm, 0, n)
        self._n = n

    def read(self) -> list[dict[str, Any]]:
        self.flush()
        return read_ring(self._mm)

    def close(self) -> None:
        self.flush()
        close_ring(self._mm, self._fd)


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("utf-8", "replace")


def read_ring(buf: Any) -> list[dict[str, Any]]:
    """The whole records of one ring, oldest first."""
    if len(buf) < SIZE:
        return []
    (written,) = _HEAD.unpack_from(buf, 0)
    first = max(1, written - CAPACITY + 1)
    out = []
    for n in range(first, written + 1):
        off = _HEAD.size + (n - 1) % CAPACITY * _RECORD.size
        raw = bytes(buf[off:off + _RECORD.size])
        seq, when, status, route, outcome, client, sub = _RECORD.unpack(raw)
        if seq != n or _SEQ.unpack_from(buf, off)[0] != n:
            continue  # being rewritten (or already overwritten by a newer record)
        out.append({"time": when, "status": status, "route": _text(route),
                    "outcome": _text(outcome), "client": _text(client),
                    "sub_hash": _text(sub) or None})
    return out


def collect(directory: str, limit: int = 100) -> dict[str, Any]:
    """The newest `limit` denials over every worker's ring (exited workers' too), and the
    clients refused most often among everything still in the rings."""
    records = read_rings(directory, SUFFIX, SIZE, read_ring)
    records.sort(key=lambda r: r["time"], reverse=True)
    top = Counter(r["client"] for r in records).most_common(10)
    return {"denials": records[:limit],
            "top_clients": [{"client": c, "count": n} for c, n in top]}
