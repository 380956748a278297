"""The issuer's detections (credential stuffing, password spraying, refresh-token reuse; see
wardgate.issuer.detection) shown by the gateway: read from the Redis stream the issuer appends
them to, into this gateway's log, `GET /admin/detections` and `wardgate_detections_total`.

Every worker reads the stream with a blocking XREAD on a connection of its own (from the one
client layer, wardgate.state), starting at the newest entry; one worker per gateway takes each
entry, by a `SET NX` claim on the entry id within this gateway's group (its host and
supervisor), so the admin view and the counters show it once per gateway however many
workers it runs. A verdict about a network also flags that network in every worker (routes
act on it by their action, as on the gateway's own network verdicts). Off the request path;
a Redis error only delays the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from typing import TYPE_CHECKING, Any

from wardgate import logs
from wardgate.detect.verdict import KEY_NET, Finding
from wardgate.state.resp import encode

if TYPE_CHECKING:
    from wardgate.config.limits import StateConfig
    from wardgate.detect.adapter import DetectionRuntime

BLOCK_MS = 1000
COUNT = 100
CLAIM_MS = 600_000  # an entry is claimed for this long: longer than any worker's restart
_RETRY_S = (0.05, 1.0)


def gateway_group() -> str:
    """The workers of one gateway share their supervisor (the parent process)."""
    return f"{socket.gethostname()}:{os.getppid()}"


def parse(reply: Any) -> list[tuple[bytes, dict[str, Any] | None]]:
    """An XREAD reply -> [(entry id, the record or None when it does not parse)]."""
    out: list[tuple[bytes, dict[str, Any] | None]] = []
    if not reply:
        return out
    for _stream, entries in reply:
        for entry_id, fields in entries:
            rec: dict[str, Any] | None = None
            try:
                doc = dict(zip(fields[::2], fields[1::2], strict=True))
                parsed = json.loads(doc[b"d"])
                if isinstance(parsed, dict) and isinstance(parsed.get("kind"), str) \
                        and isinstance(parsed.get("action"), str):
                    rec = parsed
            except (KeyError, ValueError, TypeError):
                rec = None
            out.append((entry_id, rec))
    return out


class IssuerFeed:
    def __init__(self, state: StateConfig, key: str, group: str | None = None) -> None:
        from wardgate.state import client_from_config

        client = client_from_config(state, timeout_s=BLOCK_MS / 1000 + state.timeout_ms / 1000,
                                    pool_size=1)
        assert client is not None
        self.client = client
        self.key = key.encode()
        self.group = (group or gateway_group()).encode()
        self.taken = self.skipped = self.bad = 0
        self._task: asyncio.Task[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop, rt: DetectionRuntime) -> None:
        self._task = loop.create_task(self._run(rt))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.client.stop()

    def _call(self, key: bytes, cmd: bytes) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(reply: Any) -> None:
            if not fut.done():
                fut.set_result(reply)

        self.client.call(key, cmd, done)
        return fut

    async def _newest(self) -> bytes | None:
        """The id of the stream's newest entry (`0` for an empty stream); None on error."""
        reply = await self._call(self.key, encode(b"XREVRANGE", self.key, b"+", b"-",
                                                  b"COUNT", 1))
        if not isinstance(reply, list):
            return None
        return reply[0][0] if reply else b"0"

    async def _run(self, rt: DetectionRuntime) -> None:
        await self.client.start()
        last: bytes | None = None
        delay = _RETRY_S[0]
        while True:
            if last is None:
                last = await self._newest()  # what was published before this worker started
                if last is None:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RETRY_S[1])
                    continue
            reply = await self._call(self.key, encode(
                b"XREAD", b"COUNT", COUNT, b"BLOCK", BLOCK_MS, b"STREAMS", self.key, last))
            if reply is not None and not isinstance(reply, list):
                await asyncio.sleep(delay)  # keep `last`: nothing is lost by a reconnect
                delay = min(delay * 2, _RETRY_S[1])
                continue
            delay = _RETRY_S[0]
            entries = parse(reply)
            claims = []
            for entry_id, rec in entries:
                last = entry_id
                if rec is None:
                    self.bad += 1
                    continue
                self.flag(rec, rt)  # every worker: each enforces its own flags
                claim = b"wg:dc:{" + self.group + b"}:" + self.key + b":" + entry_id
                claims.append((rec, self._call(claim, encode(
                    b"SET", claim, b"1", b"NX", b"PX", CLAIM_MS))))
            for rec, fut in claims:
                if await fut == "OK":  # a simple string reply (resp.py decodes it)
                    self.taken += 1
                    self.show(rec, rt)
                else:
                    self.skipped += 1  # another worker of this gateway has it

    @staticmethod
    def flag(rec: dict[str, Any], rt: DetectionRuntime) -> None:
        """A verdict of the issuer about a network flags it here too, for `deny_s`: the
        network stuffing credentials at the issuer may use what it got at the gateway. Each
        route acts on it by its own action (nothing on `log` routes)."""
        key = rec.get("key")
        cfg = rt.cfg
        if not cfg.issuer_flags or cfg.dry_run or rec.get("dry_run") \
                or not isinstance(key, str) or not key.startswith(KEY_NET + ":"):
            return
        net = key[len(KEY_NET) + 1:]
        if rt.detector.allowed_network(net.partition("/")[0]):
            return
        score = rec.get("score")
        rt.detector.flags.set(KEY_NET, net, asyncio.get_running_loop().time() + cfg.deny_s,
                              Finding(str(rec["kind"]),
                                      float(score) if isinstance(score, int | float) else 1.0,
                                      KEY_NET, net, {}, "the issuer's verdict"))

    @staticmethod
    def show(rec: dict[str, Any], rt: DetectionRuntime) -> None:
        logs.event("detection", level="warning",
                   **{k: v for k, v in rec.items() if k != "time"})
        if rt.ring is not None:
            rt.ring.add(rec)
        rt.count(rec["kind"], "dry_run" if rec.get("dry_run") else rec["action"])
