"""A dict with a size cap: the oldest keys go first when it is full (no I/O).

Every per-token, per-subject and per-network table of the detector is one, so memory stays
bounded whatever the number of distinct callers (a flood of fresh tokens evicts the oldest
state, it never grows the process)."""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Bounded(Generic[K, V]):
    __slots__ = ("data", "cap", "evicted")

    def __init__(self, cap: int) -> None:
        self.data: dict[K, V] = {}
        self.cap = cap
        self.evicted = 0

    def get(self, key: K) -> V | None:
        return self.data.get(key)

    def put(self, key: K, value: V) -> None:
        data = self.data
        if key not in data and len(data) >= self.cap:
            # drop the oldest sixteenth at once: eviction costs O(1) per insertion on average
            n = max(1, self.cap // 16)
            for old in list(data)[:n]:
                del data[old]
            self.evicted += n
        data[key] = value

    def touch(self, key: K, value: V) -> None:
        """Put and move to the young end (a key still in use is evicted last)."""
        self.data.pop(key, None)
        self.put(key, value)

    def pop(self, key: K) -> V | None:
        return self.data.pop(key, None)

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        return key in self.data
