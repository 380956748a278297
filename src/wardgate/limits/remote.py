"""GCRA on Redis: the same arithmetic as gcra.py, run as one atomic server-side step per
decision. The server's TIME is the clock, so the gateways' clocks never matter; times are
integer microseconds (exact in Lua's doubles until the year 2255).

Keys are `wg:rl:{ROUTE/LIMIT/KEY}`: the braces are a Redis Cluster hash tag, so the script's
one key decides the node, and the same bucket is found by every gateway on every topology.
"""

from __future__ import annotations

import hashlib
from typing import Any

from wardgate.limits.gcra import Decision, Gcra
from wardgate.state import Script

# ARGV[1] = emission interval (us), ARGV[2] = tolerance (us).
# Returns {allowed (0/1), remaining, retry_after_us, reset_after_us}.
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local ahead = tat - now
if ahead > tau then
  return {0, 0, ahead - tau, ahead}
end
local new_tat = tat + interval
local used = new_tat - now
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil(used / 1000))
return {1, math.floor((tau + interval - used) / interval), 0, used}
"""

SCRIPT = Script(GCRA_LUA)


def bind(gcra: Gcra) -> Any:
    """The script with this limit's interval and tolerance fixed (as microseconds)."""
    return SCRIPT.bind(repr(gcra.interval * 1e6).encode(), repr(gcra.tolerance * 1e6).encode())


def bucket_key(route: str, limit: str, key: str) -> bytes:
    """`wg:rl:{ROUTE/LIMIT/KEY}` (callers cache it per key: see route.Limit.bucket)."""
    raw = f"{route}/{limit}/{key}".encode("utf-8", "surrogatepass")
    if b"{" in raw or b"}" in raw or len(raw) > 200:
        # braces would end the hash tag early: name such buckets by their hash
        raw = f"{route}/{limit}/#".encode() + hashlib.sha256(raw).hexdigest()[:32].encode()
    return b"wg:rl:{" + raw + b"}"


def parse_reply(reply: Any) -> Decision | None:
    """The script's answer, or None when the reply is not one (a ReplyError, a StoreError)."""
    if type(reply) is list and len(reply) == 4:
        allowed, remaining, retry_us, reset_us = reply
        if type(allowed) is int and type(remaining) is int and type(retry_us) is int \
                and type(reset_us) is int:
            return allowed == 1, max(remaining, 0), retry_us / 1e6, reset_us / 1e6, 0.0
    return None
