"""One worker's revocation feed: the set, its health, and the adapter that fills them.

Built by the gateway runtime when the file has `revocation:`; the auth filter calls
`set.check` on every request. A batch that changes the set also drops the matching entries
of the verified-token cache at once (one pass over the cache per batch, never per request);
a connection's auth memo is checked against the set before it is reused, so a kept-alive
connection's next request with a revoked token takes the full path and is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from wardgate import logs
from wardgate.revoke.events import Revocation
from wardgate.revoke.health import FeedHealth
from wardgate.revoke.revset import RevocationSet

if TYPE_CHECKING:
    from wardgate.auth.registry import ProviderRegistry
    from wardgate.config.gateway import GatewayConfig

EXPIRE_EVERY_S = 5.0


class RevocationFeed:
    def __init__(self, cfg: GatewayConfig, registry: ProviderRegistry) -> None:
        rv = cfg.revocation
        assert rv is not None
        name = rv.provider or cfg.providers[0].name
        leeway = next(p.leeway_s for p in cfg.providers if p.name == name)
        self.set = RevocationSet(name, leeway)
        self.source = cfg.revocation_source()
        self.health = FeedHealth(self.source, rv.max_staleness_s)
        self.startup_wait_s = rv.startup_wait_s
        self.cache = registry.cache
        self.dropped = 0  # cache entries dropped by revocations
        self.adapter: Any
        if self.source == "redis":
            from wardgate.revoke.stream import StreamReader

            self.adapter = StreamReader(cfg.state, rv.stream_key, rv.timeout_s)
        else:
            from wardgate.revoke.poll import Poller

            assert rv.poll_url is not None
            self.adapter = Poller(rv.poll_url, rv.token() or "", rv.poll_interval_s,
                                  rv.timeout_s)
        self._task: asyncio.Task[None] | None = None
        self._synced: asyncio.Event | None = None
        self._expired_at = 0.0
        registry.set_revocation_check(self.set.check)
        registry.revocation_health = self.health

    def synced(self, now: float) -> None:
        """An adapter's good sync (a poll answered, a stream read returned)."""
        self.health.ok(now)
        if self._synced is not None:
            self._synced.set()

    def apply(self, events: Iterable[Revocation]) -> int:
        changed = self.set.apply(events, time.time())
        if changed:
            self.dropped += self.cache.drop_where(self.set.check)
        return len(changed)

    async def start(self) -> None:
        """Start the adapter and wait (up to startup_wait_s) for its first good sync, so a
        worker started after a revocation refuses the token from its first request."""
        self._synced = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._synced.wait(), self.startup_wait_s)
        if self.health.last_ok is None:
            logs.event("revocation_feed_not_ready", level="warning", source=self.source,
                       waited_s=self.startup_wait_s, reason=self.health.error or "no answer")
            self.health.tick(time.time())

    async def _run(self) -> None:
        while True:
            try:
                await self.adapter.run(self)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bug in a read must not end the feed
                self.health.failed(f"{type(exc).__name__}: {exc}"[:200])
                logs.event("revocation_feed_failed", level="error",
                           error=f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def sweep(self, now: float) -> None:
        """From the worker's sweeper: freshness, and expired entries every few seconds."""
        self.health.tick(now)
        if now >= self._expired_at + EXPIRE_EVERY_S:
            self._expired_at = now
            self.set.expire(now)
