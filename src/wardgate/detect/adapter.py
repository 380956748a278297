"""The detection adapter of one worker: the buffer the request path appends to, the task that
feeds the detector off the request path, and what a verdict does (log line, metrics, the
admin ring, the flags the route steps read; with Redis, the verdict shared).

The request path pays one deque append per finished request on a watched route (the worker's
`log` wrapper in gateway/worker.py): the request object itself, and its status. Everything
else (reading the identity, hashing the user agent, the network prefix, every signal) runs
in `tick`, every `interval_ms`, between requests.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from wardgate import logs
from wardgate.config.detect import ACTIONS
from wardgate.detect.detector import KINDS, Detector
from wardgate.detect.events import Event, network_of, ua_hash
from wardgate.detect.step import compile_step
from wardgate.detect.verdict import KEY_JTI

if TYPE_CHECKING:
    from wardgate.config.gateway import GatewayConfig
    from wardgate.detect.verdict import Verdict
    from wardgate.gateway.request import Request
    from wardgate.observe.detections import DetectionRing
    from wardgate.observe.http import GatewayMetrics

DETECTIONS = "wardgate_detections_total"
ENFORCED = "wardgate_detection_enforced_total"
OBSERVED = "wardgate_detection_events_total"
#: the action label of a verdict in dry-run mode
DRY_RUN = "dry_run"
_TICK_BUDGET = 20_000  # events per tick at most: a backlog is worked off over several ticks


class DetectionRuntime:
    """Compiled once per worker (Runtime._compile_detection)."""

    def __init__(self, cfg: GatewayConfig, routes: list[Any], shared: Any = None) -> None:
        dcfg = cfg.detection
        assert dcfg is not None
        self.cfg = dcfg
        actions: dict[str, str] = {}
        watched: list[tuple[Any, str]] = []
        for rc, route in zip(cfg.routes, routes, strict=True):
            route.observed = False
            route.detect = None
            if rc.auth == "none" or not dcfg.enabled:
                continue
            override = rc.detection
            if override is not None and not override.enabled:
                continue
            action: str = override.action if override is not None and override.action else dcfg.action
            actions[rc.name] = action
            route.observed = True
            watched.append((route, action))
        self.detector = Detector(dcfg, actions)
        self.buf: deque[tuple[Request, int]] = deque(maxlen=dcfg.buffer)
        self.routes = [r for r, _ in watched]
        self._counters: dict[str, list[Any]] = {}
        for route, route_action in watched:
            counter: list[Any] = [None, 0]
            self._counters[route.name] = counter
            if not dcfg.dry_run:
                route.detect = compile_step(self.detector.flags, route_action, dcfg.header,
                                            counter)
        self.actions = {r.name: a for r, a in watched}
        self.shared = shared  # wardgate.detect.remote.SharedTokens, with state.redis_url
        #: the issuer's detections (wardgate.detect.issuer_feed), with state.redis_url
        self.feed: Any = None
        if dcfg.issuer_feed and cfg.state.urls():
            from wardgate.detect.issuer_feed import IssuerFeed

            self.feed = IssuerFeed(cfg.state, dcfg.issuer_stream)
        self.ring: DetectionRing | None = None
        self._values: Any = None
        self._slots: dict[tuple[str, str], int] = {}
        self._observed_slot = 0
        self._task: asyncio.Task[None] | None = None
        self._swept = 0.0

    # -- metrics -------------------------------------------------------------------------------
    def declare_metrics(self, metrics: GatewayMetrics) -> None:
        reg = metrics.registry
        fam = reg.family(DETECTIONS, "counter", "Detection verdicts by signal and action "
                         "(one per signal and key per cooldown)", ("kind", "action"))
        for kind in KINDS:
            for action in (*ACTIONS, DRY_RUN):
                self._slots[(kind, action)] = reg.series(fam, kind, action)
        if self.feed is not None:  # the kinds and actions the issuer reports
            from wardgate.config.logindetect import LOGIN_ACTIONS
            from wardgate.detect.login import LOGIN_KINDS

            for kind in LOGIN_KINDS:
                for action in (*LOGIN_ACTIONS, "revoke", DRY_RUN):
                    if (kind, action) not in self._slots:
                        self._slots[(kind, action)] = reg.series(fam, kind, action)
        enf = reg.family(ENFORCED, "counter", "Requests a detection verdict acted on (risk "
                         "header added, step-up asked, denied)", ("route", "action"))
        slots = {name: reg.series(enf, name, self.actions[name]) for name in self._counters
                 if self.actions[name] != "log"}
        self._observed_slot = reg.series(reg.family(
            OBSERVED, "counter", "Finished requests the detector examined"))

        def bind(values: Any) -> None:
            self._values = values
            for name, slot in slots.items():
                self._counters[name][0] = values
                self._counters[name][1] = slot

        metrics.on_bind(bind)

    def count(self, kind: str, action: str) -> None:
        """One more verdict of `kind` and `action` (the issuer's, through the feed)."""
        if self._values is not None:
            slot = self._slots.get((kind, action))
            if slot is not None:
                self._values[slot] += 1

    # -- the task ------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._run(loop))
        if self.feed is not None:
            self.feed.start(loop, self)

    async def stop(self) -> None:
        if self.feed is not None:
            await self.feed.stop()
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.tick(asyncio.get_running_loop().time())  # the last requests still count

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        interval = self.cfg.interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                self.tick(loop.time())
            except Exception as exc:  # noqa: BLE001 - a detector bug must never stop serving
                logs.event("detection_failed", level="error",
                           error=f"{type(exc).__name__}: {exc}")

    def tick(self, now: float) -> list[Verdict]:
        """Feed what the request path buffered to the detector; act on its verdicts."""
        buf = self.buf
        observe = self.detector.observe
        found: list[Verdict] = []
        n = 0
        while buf and n < _TICK_BUDGET:
            req, status = buf.popleft()
            n += 1
            ev = self.event(req, status)
            verdicts = observe(ev)
            if self.shared is not None:
                self.shared.observe(ev, self)
            if verdicts:
                found.extend(verdicts)
        if self._values is not None and n:
            self._values[self._observed_slot] += n
        for v in found:
            self.emit(v)
            if self.shared is not None and v.finding.key_type == KEY_JTI and not v.dry_run:
                self.shared.flag(v.finding.key, v.kind)
        if now >= self._swept + 1.0:
            self._swept = now
            self.detector.sweep(now)
        return found

    @staticmethod
    def event(req: Request, status: int) -> Event:
        ident = req.identity
        sub = jti = client_id = sub_hash = None
        if ident is not None:
            sub, jti = ident.sub, ident.jti
            cid = ident.claims.get("client_id") or ident.claims.get("azp")
            client_id = cid if isinstance(cid, str) else None
            sub_hash = ident.sub_hash
        params = req.params
        ip = req.client_ip
        return Event(req.start, req.route.name, ip, network_of(ip), status, req.method,
                     req.auth_outcome, sub, jti, client_id, sub_hash,
                     ua_hash(req.header(b"user-agent")), req.path,
                     tuple(params.values()) if params else ())

    def emit(self, v: Verdict) -> None:
        """A verdict's log line, counter and admin record (its flag is already set)."""
        record = v.record(time.time())
        logs.event("detection", level="warning",
                   **{k: val for k, val in record.items() if k != "time"})
        if self.ring is not None:
            self.ring.add(record)
        if self._values is not None:
            slot = self._slots.get((v.kind, DRY_RUN if v.dry_run else v.action))
            if slot is not None:
                self._values[slot] += 1
