"""Adapter: a `revoke` verdict's revocation, applied in this worker at once and sent to every
other worker and gateway through the revocation feed (wardgate.revoke).

    with Redis   appended to the feed's stream, the one the issuer's relay writes and every
                 gateway's StreamReader blocks on (one script call on the state client)
    without      POST <issuer>/revocations (issuer/routes_revocations.py) with the report
                 token; the issuer stores it and serves it to every polling gateway

Off the request path: called from the detector's tick. Logged with fingerprints only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from wardgate import logs
from wardgate.revoke.events import Revocation
from wardgate.state import Script

if TYPE_CHECKING:
    from wardgate.config.gateway import GatewayConfig
    from wardgate.revoke.feed import RevocationFeed
    from wardgate.state.client import StateClient

# KEYS[1] the feed's stream; ARGV[1] the event's JSON. The entry's `s` repeats the newest
# issuer seq the stream holds, so the relay (revoke/relay.py), which appends only seqs newer
# than the newest entry's, neither skips nor repeats an issuer event because of this one.
APPEND = Script("""
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local have = '0'
if last[1] then
  local f = last[1][2]
  for i = 1, #f, 2 do
    if f[i] == 's' then have = f[i + 1] end
  end
end
return redis.call('XADD', KEYS[1], '*', 's', have, 'e', ARGV[1])
""")
_POST_TIMEOUT_S = 5.0
_MAX_PENDING = 64  # POSTs in flight at most (the revoker's rate bounds them already)


def fingerprint(rev: Revocation) -> str:
    return logs.fingerprint(f"{rev.kind}:{rev.value}")


class RevocationSink:
    def __init__(self, cfg: GatewayConfig, state: StateClient | None,
                 feed: RevocationFeed | None) -> None:
        rv, d = cfg.revocation, cfg.detection
        assert rv is not None and d is not None
        self.feed = feed
        self.via = "redis" if cfg.revocation_source() == "redis" else "issuer"
        self.client = state
        self.key = rv.stream_key.encode()
        if self.via == "redis":
            assert state is not None
            state.register(APPEND)
        self.url = d.revoke.url or rv.poll_url
        self.token = d.revoke.token() or ""
        self.sent = self.failed = 0
        self._pending: set[asyncio.Task[None]] = set()
        self._http: Any = None

    def held(self, rev: Revocation) -> bool:
        """This worker's revocation set covers it already (from the feed, or sent before)."""
        return self.feed is not None and rev.kind == "jti" and rev.value in self.feed.set.jtis

    def send(self, rev: Revocation, why: dict[str, Any]) -> None:
        if self.feed is not None:
            self.feed.apply([rev])  # this worker refuses the token from its next request
        if self.via == "redis":
            assert self.client is not None
            payload = json.dumps(rev.to_wire(), separators=(",", ":"))
            self.client.run(APPEND.bind(payload), self.key,
                            lambda reply: self._done(rev, why, reply))
        elif len(self._pending) < _MAX_PENDING:
            task = asyncio.get_running_loop().create_task(self._post(rev, why))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        else:
            self._done(rev, why, "too many revocations in flight")

    def _done(self, rev: Revocation, why: dict[str, Any], reply: Any) -> None:
        ok = isinstance(reply, bytes | int) and not isinstance(reply, bool)
        if ok:
            self.sent += 1
        else:
            self.failed += 1
        logs.event("detection_revocation", level="warning" if ok else "error",
                   result="sent" if ok else "failed", via=self.via, kind=rev.kind,
                   fingerprint=fingerprint(rev), until=int(rev.until), **why,
                   **({} if ok else {"error": str(getattr(reply, "message", reply))[:200]}))

    async def _post(self, rev: Revocation, why: dict[str, Any]) -> None:
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(timeout=_POST_TIMEOUT_S, follow_redirects=False,
                                           trust_env=False)
        body: dict[str, Any] = {"kind": rev.kind, "value": rev.value, "reason": "detection"}
        if rev.kind == "jti":
            body["until"] = int(rev.until)
        try:
            r = await self._http.post(self.url, json=body,
                                      headers={"Authorization": f"Bearer {self.token}"})
            reply: Any = r.status_code if r.status_code == 200 else f"HTTP {r.status_code}"
        except (httpx.HTTPError, OSError) as exc:
            reply = f"{type(exc).__name__}"
        self._done(rev, why, reply)

    async def stop(self) -> None:
        for t in list(self._pending):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._http is not None:
            await self._http.aclose()
            self._http = None
