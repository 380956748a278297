"""Adapter: one worker reads the issuer's Redis stream (relay.py) with a blocking XREAD.

A connection of its own (a blocked read holds its connection), from the one Redis client
layer (wardgate.state). The first read starts at id 0: the whole stream, which is every live
event (the relay trims the rest), so a worker started after a revocation holds it before it
serves. After any error the next read starts at 0 again: applying an event twice changes
nothing, and a Redis that restarted empty (and was refilled by the relay) is read whole.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from wardgate.revoke.events import BadEvent, Revocation
from wardgate.state.resp import encode

if TYPE_CHECKING:
    from wardgate.config.limits import StateConfig
    from wardgate.revoke.feed import RevocationFeed

BLOCK_MS = 1000
COUNT = 1000
_RETRY_S = (0.05, 1.0)


def parse_entries(reply: Any) -> tuple[list[Revocation], bytes | None, int]:
    """An XREAD reply -> (events, the last entry id, entries that did not validate)."""
    events: list[Revocation] = []
    bad = 0
    last: bytes | None = None
    if not reply:
        return events, last, bad
    for _stream, entries in reply:
        for entry_id, fields in entries:
            last = entry_id
            try:
                doc = dict(zip(fields[::2], fields[1::2], strict=True))
                events.append(Revocation.from_wire(json.loads(doc[b"e"])))
            except (BadEvent, KeyError, ValueError, TypeError):
                bad += 1
    return events, last, bad


class StreamReader:
    source = "redis"

    def __init__(self, state: StateConfig, key: str, timeout_s: float) -> None:
        from wardgate.state import client_from_config

        client = client_from_config(state, timeout_s=BLOCK_MS / 1000 + timeout_s, pool_size=1)
        assert client is not None
        self.client = client
        self.key = key.encode()

    def _read(self, last: bytes) -> asyncio.Future[Any]:
        return self.client.call_future(self.key, encode(b"XREAD", b"COUNT", COUNT, b"BLOCK",
                                                        BLOCK_MS, b"STREAMS", self.key, last))

    async def run(self, feed: RevocationFeed) -> None:
        await self.client.start()
        try:
            last = b"0"
            delay = _RETRY_S[0]
            while True:
                reply = await self._read(last)
                if reply is not None and not isinstance(reply, list):
                    feed.health.failed(str(getattr(reply, "message", reply)))
                    last = b"0"
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RETRY_S[1])
                    continue
                delay = _RETRY_S[0]
                events, newest, bad = parse_entries(reply)
                feed.set.rejected += bad
                if events:
                    feed.apply(events)
                if newest is not None:
                    last = newest
                feed.synced(time.time())
        finally:
            await self.client.stop()
