"""The issuer's Redis relay: its revocation events appended to one Redis stream.

The database is the source of truth (an event commits with the change that caused it, from
the issuer or from `wardgate revoke` in another process); every `relay_interval_s` the relay
asks the stream for the newest seq it holds and appends what the database has after it. So a
Redis that restarted empty is refilled with every live event at the next tick, two issuers
on one database append each event once (the script compares seqs atomically), and a relay
that was down catches up. Old entries are trimmed by id time (XADD MINID): an entry older
than the longest token lifetime plus the grace covers no live token.

Gateways read the stream with a blocking XREAD (stream.py): Redis answers a blocked reader
the moment an entry is appended, as fast as a PUBLISH, and the same read from an older id is
the catch-up after a restart or a lost connection, so no message can fall between a
subscription and a backlog read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from wardgate import logs
from wardgate.state import Script, StoreError

if TYPE_CHECKING:
    from wardgate.config.issuer import IssuerConfig
    from wardgate.issuer.db import Database

# KEYS[1] the stream; ARGV: seq, event JSON, MINID (ms). Appends only a seq newer than the
# newest held; answers the newest seq held afterwards (ARGV seq 0: just ask).
APPEND = Script("""
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local have = 0
if last[1] then
  local f = last[1][2]
  for i = 1, #f, 2 do
    if f[i] == 's' then have = tonumber(f[i + 1]) end
  end
end
local seq = tonumber(ARGV[1])
if seq <= have then return have end
redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[3], '*', 's', ARGV[1], 'e', ARGV[2])
return seq
""")


class Relay:
    def __init__(self, cfg: IssuerConfig, db: Database) -> None:
        from wardgate.state import client_from_config

        client = client_from_config(cfg.state)
        assert client is not None
        self.client = client
        client.register(APPEND)
        self.db = db
        self.key = cfg.revocations.stream_key.encode()
        self.interval_s = cfg.revocations.relay_interval_s
        self.grace_s = cfg.revocations.grace_s
        self.retention_s = max(cfg.tokens.access_ttl_s, cfg.tokens.id_token_ttl_s) + 1 + \
            cfg.revocations.grace_s
        self.relayed = 0
        self._task: asyncio.Task[None] | None = None
        self._down: bool | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        from sqlalchemy import event

        await self.client.start()
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        # An event committed by this process is relayed at once, not at the next tick
        # (events of other processes, `wardgate revoke`, wait for the tick).
        event.listen(self.db.engine.sync_engine, "commit", self._committed)
        self._task = self._loop.create_task(self._run())

    def _committed(self, conn: Any) -> None:
        from wardgate.issuer.revocations import EMITTED

        if conn.info.pop(EMITTED, False) and self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> None:
        from sqlalchemy import event

        if self._loop is not None:
            event.remove(self.db.engine.sync_engine, "commit", self._committed)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.stop()

    def _append(self, seq: int, payload: str) -> asyncio.Future[Any]:
        minid = int((time.time() - self.retention_s) * 1000)
        return self.client.run_future(APPEND.bind(seq, payload, minid), self.key)

    async def tick(self) -> int:
        """One round: how many events were appended. Raises StoreError when Redis fails."""
        from wardgate.issuer import revocations

        have = await self._append(0, "")
        if not isinstance(have, int):
            raise StoreError(str(have))
        async with self.db.begin() as conn:
            events, _ = await revocations.since(conn, int(have), now=int(time.time()),
                                                grace_s=self.grace_s)
        if not events:
            return 0
        futs = [self._append(ev.seq, json.dumps(ev.to_wire(), separators=(",", ":")))
                for ev in events]
        replies = await asyncio.gather(*futs)
        bad = next((r for r in replies if not isinstance(r, int)), None)
        if bad is not None:
            raise StoreError(str(bad))
        self.relayed += len(events)
        return len(events)

    async def _run(self) -> None:
        while True:
            try:
                while await self.tick() >= 1000:
                    pass  # a backlog: the next page at once
                self._state(False, "")
            except StoreError as exc:
                self._state(True, str(exc))
            except Exception as exc:  # noqa: BLE001 - a bad read must not end the relay
                self._state(True, f"{type(exc).__name__}: {exc}")
            assert self._wake is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()

    def _state(self, down: bool, reason: str) -> None:
        if self._down is down:
            return
        self._down = down
        if down:
            logs.event("revocation_relay_failing", level="warning", reason=reason)
        else:
            logs.event("revocation_relay_ok", relayed=self.relayed)
