"""Each proof is accepted once (RFC 9449 §11.1): its `jti` is remembered for as long as the
proof's `iat` would still be accepted, so a replay inside that window is refused and one
after it fails the `iat` check anyway.

`ReplayCache` is one worker's memory: two generations of (jkt, jti) hashes, rotated every
`window_s`, so an entry lives between one and two windows and memory is bounded by the proofs
of two windows. When a generation is full, new proofs are refused (fail closed, `full`)
rather than old entries dropped, which would reopen their replay.

Across workers and gateways the same check runs on Redis (`SCRIPT`, through the one client
layer in wardgate.state): SET NX with the window as expiry, one call per proof.
"""

from __future__ import annotations

import hashlib

from wardgate.state import Script


class ReplayCache:
    __slots__ = ("window_s", "max_per_generation", "_cur", "_prev", "_rotated")

    def __init__(self, window_s: float, max_entries: int) -> None:
        self.window_s = float(window_s)
        self.max_per_generation = max(1, max_entries // 2)
        self._cur: set[int] = set()
        self._prev: set[int] = set()
        self._rotated = 0.0

    def add(self, key: int, now: float) -> int:
        """0: first sighting (now remembered); 1: seen before (a replay); 2: cache full."""
        if now - self._rotated >= self.window_s:
            # one window passed: the old generation is older than any acceptable iat
            self._prev = self._cur if now - self._rotated < 2 * self.window_s else set()
            self._cur = set()
            self._rotated = now
        cur = self._cur
        if key in cur or key in self._prev:
            return 1
        if len(cur) >= self.max_per_generation:
            return 2
        cur.add(key)
        return 0

    def __len__(self) -> int:
        return len(self._cur) + len(self._prev)


def local_key(jkt: str, jti: str) -> int:
    # str hashes are keyed per process (SipHash): a client cannot aim collisions at others
    return hash((jkt, jti))


# ARGV[1] = window in ms. 1: first sighting (now stored), 0: seen before.
REPLAY_LUA = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
"""

SCRIPT = Script(REPLAY_LUA)


def redis_key(jkt: str, jti: str) -> bytes:
    """`wg:dpop:{HASH}`: fixed length whatever the client sent; the braces make the whole hash
    the Redis Cluster hash tag."""
    digest = hashlib.sha256(f"{jkt}\0{jti}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return b"wg:dpop:{" + digest.encode() + b"}"
