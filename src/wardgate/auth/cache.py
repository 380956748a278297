"""The verified-token cache: full token bytes -> Identity. Bounded LRU, sans-I/O.

An entry is good until the token's `exp` or until the key that verified it leaves its key set
(`key.alive`). Failures are never stored, so a bad token costs a full verification every time
and cannot poison the cache. Revocation is by jti (see route.py), never by the raw string: one
token has several valid spellings (ECDSA (r, n-s)), all of which would have to be found.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from wardgate.auth.identity import Identity


class TokenCache:
    __slots__ = ("_entries", "max_entries", "hits", "misses", "_seen", "rejected")

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[bytes, Identity] = OrderedDict()
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        # The doorkeeper (TinyLFU's admission filter): hashes of tokens verified once and not
        # cached. A token is cached on its second verification within the window, so a stream
        # of one-off tokens neither pushes the working set out nor pays an insert, an eviction
        # and the garbage collector's walk of long-lived entries for each token.
        self._seen: set[int] = set()
        self.rejected = 0

    def get(self, token: bytes, now: float) -> Identity | None:
        ident = self._entries.get(token)
        if ident is None:
            self.misses += 1
            return None
        key = ident.key
        if now >= ident.exp or (key is not None and not key.alive):
            del self._entries[token]
            self.misses += 1
            return None
        self._entries.move_to_end(token)
        self.hits += 1
        return ident

    def put(self, token: bytes, ident: Identity) -> None:
        entries = self._entries
        if self.max_entries <= 0:
            return
        if token in entries:
            entries.move_to_end(token)  # a new key is appended last already
        else:
            seen = self._seen
            h = hash(token)  # bytes keep their hash: the lookup in get() computed it already
            if h not in seen:
                # first sighting: remember it for a window of max_entries verifications;
                # a collision only admits a token early, it never serves a wrong entry
                if len(seen) >= self.max_entries:
                    seen.clear()
                seen.add(h)
                self.rejected += 1
                return
            seen.discard(h)
        entries[token] = ident
        while len(entries) > self.max_entries:
            entries.popitem(last=False)  # the least recently used: O(1), nothing copied

    def drop_jti(self, jti: str) -> int:
        """Remove every entry carrying this jti (for a revocation pushed to this worker)."""
        doomed = [t for t, i in self._entries.items() if i.jti == jti]
        for t in doomed:
            del self._entries[t]
        return len(doomed)

    def drop_where(self, revoked: Callable[[Identity], bool]) -> int:
        """Remove every entry the predicate refuses (a batch of revocations, once per batch)."""
        doomed = [t for t, i in self._entries.items() if revoked(i)]
        for t in doomed:
            del self._entries[t]
        return len(doomed)

    def clear(self) -> None:
        self._entries.clear()
        self._seen.clear()

    def __len__(self) -> int:
        return len(self._entries)
