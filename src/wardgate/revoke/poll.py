"""Adapter: one worker polls the issuer's `GET /revocations?since=CURSOR` (no Redis).

The first poll starts at 0 (every live event), so a worker started after a revocation
holds it before it serves. A new `epoch` (another issuer database) starts the cursor at 0
again; the entries held stay (a token once revoked stays revoked until it expires).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from wardgate.revoke.events import BadEvent, Revocation

if TYPE_CHECKING:
    import httpx

    from wardgate.revoke.feed import RevocationFeed

MAX_BODY = 8 * 1024 * 1024


class FeedError(Exception):
    """The issuer's answer was not a feed page."""


def parse_page(doc: Any) -> tuple[str, int, list[Revocation], bool, int]:
    """A feed page -> (epoch, cursor, events, more, events that did not validate)."""
    if not isinstance(doc, dict):
        raise FeedError("not a JSON object")
    epoch, cursor, raw = doc.get("epoch"), doc.get("cursor"), doc.get("events")
    if not isinstance(epoch, str) or isinstance(cursor, bool) or not isinstance(cursor, int) \
            or cursor < 0 or not isinstance(raw, list):
        raise FeedError("not a revocation feed page")
    events: list[Revocation] = []
    bad = 0
    for item in raw:
        try:
            events.append(Revocation.from_wire(item))
        except BadEvent:
            bad += 1
    return epoch, cursor, events, doc.get("more") is True, bad


class Poller:
    source = "poll"

    def __init__(self, url: str, token: str, interval_s: float, timeout_s: float) -> None:
        self.url = url
        self._has_token = bool(token)
        self._auth = {"Authorization": "Bearer " + token, "Accept": "application/json"}
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.cursor = 0
        self.epoch: str | None = None

    async def _page(self, client: httpx.AsyncClient) -> bool:
        import json

        if not self._has_token:
            raise FeedError("the feed token is not set (revocation.token_env / token_file)")
        async with client.stream("GET", self.url, params={"since": self.cursor},
                                 headers=self._auth) as resp:
            if resp.status_code != 200:
                raise FeedError(f"the issuer answered {resp.status_code}")
            body = b""
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    raise FeedError("feed page too large")
        epoch, cursor, events, more, bad = parse_page(json.loads(body))
        if self.epoch is not None and epoch != self.epoch:
            self.epoch, self.cursor = epoch, 0  # another database: read it from the start
            return True
        self.epoch = epoch
        self._feed.set.rejected += bad
        if events:
            self._feed.apply(events)
        self.cursor = cursor
        self._feed.synced(time.time())
        return more

    async def run(self, feed: RevocationFeed) -> None:
        import httpx

        self._feed = feed
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False,
                                     trust_env=False) as client:
            while True:
                try:
                    if await self._page(client):
                        continue  # another page waits
                except (httpx.HTTPError, FeedError, ValueError, OSError) as exc:
                    feed.health.failed(f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(self.interval_s)
