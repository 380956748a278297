"""The detection adapter of one worker: the buffer the request path appends to, the task that
feeds the detector off the request path, and what a verdict does (log line, metrics, the
admin ring, the flags the route steps read; with Redis, the verdict shared).

The request path pays one deque append per finished request on a watched route (in the
metrics closure, observe/http.py `finisher`, or the worker's `log` wrapper in
gateway/worker.py): a flat tuple of the request's fields (`buffered`). Everything
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
from wardgate.detect.revoker import Revoker
from wardgate.detect.step import compile_step
from wardgate.detect.verdict import KEY_JTI

if TYPE_CHECKING:
    from wardgate.config.gateway import GatewayConfig
    from wardgate.detect.revoke_sink import RevocationSink
    from wardgate.detect.verdict import Verdict
    from wardgate.gateway.request import Request
    from wardgate.observe.detections import DetectionRing
    from wardgate.observe.http import GatewayMetrics

DETECTIONS = "wardgate_detections_total"
ENFORCED = "wardgate_detection_enforced_total"
OBSERVED = "wardgate_detection_events_total"
REVOCATIONS = "wardgate_detection_revocations_total"
#: the action label of a verdict in dry-run mode
DRY_RUN = "dry_run"
#: events per slice of a run: the worker goes back to its requests between slices, so one
#: run never holds the loop for long (in process ~0.4 µs an event, `hotpath.py --detection`:
#: ~0.4 ms a slice, where a busy worker's whole 100 ms backlog is ~4,000 events)
_TICK_BUDGET = 1_000


#: What the request path buffers per finished request: a flat tuple, not the Request, so the
#: request and what hangs off it (its exchange, body state) are freed when it ends instead of
#: surviving the collector's young generations for up to `interval_ms` (the GC walked them a
#: few times each). First the run key (what makes two requests one event, KEY_LEN fields;
#: the header list at UA_AT stands in for the user agent), then the rest. Built inline by the
#: metrics closure (observe/http.py `finisher`), elsewhere by `buffered`.
#:     (route, identity, client_ip, method, path, auth_outcome, status, headers,
#:      params, start, response bytes)
KEY_LEN = 8
UA_AT = 7


def buffered(req: Request, status: int, size: int) -> tuple[Any, ...]:
    """A finished request as the buffer holds it (see KEY_LEN)."""
    return (req.route, req.identity, req.client_ip, req.method, req.path, req.auth_outcome,
            status, req.headers, req.params, req.start, size)


def _ua(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for n, v in headers:
        if n == b"user-agent":
            return v
    return None


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
        self.buf: deque[tuple[Any, ...]] = deque(maxlen=dcfg.buffer)  # `buffered` items
        self.routes = [r for r, _ in watched]
        self._counters: dict[str, list[Any]] = {}
        steps: list[tuple[Any, Any]] = []
        for route, route_action in watched:
            counter: list[Any] = [None, 0]
            self._counters[route.name] = counter
            if not dcfg.dry_run:
                step = compile_step(self.detector.flags, route_action, dcfg.header, counter)
                if step is not None:
                    steps.append((route, step))

        def arm(armed: bool) -> None:
            # the steps run only while something is flagged (flags.py)
            for route, step in steps:
                route.detect = step if armed else None
        self.detector.flags.on_arm.append(arm)
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
        self.sink: RevocationSink | None = None  # action revoke (enable_revoke)
        self.revoker: Revoker | None = None
        self._limited = 0
        self._revoke_slots: dict[str, int] = {}

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
        if self.revoker is not None:
            rfam = reg.family(REVOCATIONS, "counter", "Verdicts with action revoke: revoked "
                              "through the feed, limited by revoke.max_per_minute, or with "
                              "nothing to revoke (a network; already revoked)", ("result",))
            for result in ("revoked", "limited", "not_revoked"):
                self._revoke_slots[result] = reg.series(rfam, result)

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
        now = asyncio.get_running_loop().time()
        self.tick(now)  # the last requests still count
        while self.buf:
            self.tick(now)
        if self.sink is not None:
            await self.sink.stop()

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        interval = self.cfg.interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            while True:
                try:
                    self.tick(loop.time())
                except Exception as exc:  # noqa: BLE001 - a detector bug must never stop serving
                    logs.event("detection_failed", level="error",
                               error=f"{type(exc).__name__}: {exc}")
                if not self.buf:
                    break
                await asyncio.sleep(0)  # the next slice after the requests waiting now

    def tick(self, now: float) -> list[Verdict]:
        """Feed what the request path buffered to the detector; act on its verdicts."""
        buf = self.buf
        observe = self.detector.observe
        found: list[tuple[Verdict, Event]] = []
        n = 0
        memo: dict[tuple[int, str, bytes | None], tuple[Any, ...]] = {}
        event, shared = self.event, self.shared
        # A run of identical requests (one client's burst: same token, address, user agent,
        # route, path, method, status and auth outcome) is one event counted `run` times.
        key: Any = None   # the run's key: item[:KEY_LEN] of its first request
        near: Any = None  # the same without the header list
        ev: Event | None = None
        run = 0
        ua0: bytes | None = None
        while True:
            item = buf.popleft() if buf and n < _TICK_BUDGET else None
            if item is not None:
                n += 1
                head = item[:KEY_LEN]
                # equal header lists mean the same user agent: cheaper than finding it
                if head == key or head[:UA_AT] == near and _ua(item[UA_AT]) == ua0:
                    run += 1
                    continue
            if ev is not None:
                verdicts = observe(ev, run)
                if shared is not None:
                    shared.observe(ev, self)
                if verdicts:
                    found.extend((v, ev) for v in verdicts)
            if item is None:
                break
            ua0 = _ua(item[UA_AT])
            key, near, run = head, head[:UA_AT], 1
            ev = event(item, memo, ua0)
        if self._values is not None and n:
            self._values[self._observed_slot] += n
        for v, ev in found:
            self.emit(v, ev)
            if self.shared is not None and v.finding.key_type == KEY_JTI and not v.dry_run:
                self.shared.flag(v.finding.key, v.kind)
        if now >= self._swept + 1.0:
            self._swept = now
            self.detector.sweep(now)
        return [v for v, _ in found]

    @staticmethod
    def event(item: tuple[Any, ...],
              memo: dict[tuple[int, str, bytes | None], tuple[Any, ...]] | None,
              ua: bytes | None) -> Event:
        route, ident, ip, method, path, outcome, status, _, params, start, size = item
        k = (id(ident), ip, ua)
        got = memo.get(k) if memo is not None else None
        if got is None or got[0] is not ident:
            sub = jti = client_id = sub_hash = None
            exp = 0.0
            if ident is not None:
                sub, jti = ident.sub, ident.jti
                cid = ident.claims.get("client_id") or ident.claims.get("azp")
                client_id = cid if isinstance(cid, str) else None
                sub_hash = ident.sub_hash
                exp = ident.exp or 0.0
            got = (ident, network_of(ip), sub, jti, client_id, sub_hash, ua_hash(ua), exp)
            if memo is not None:
                memo[k] = got
        return Event(start, route.name, ip, got[1], status, method,
                     outcome, got[2], got[3], got[4], got[5], got[6], path,
                     tuple(params.values()) if params else (), got[7], size)

    def enable_revoke(self, sink: RevocationSink) -> None:
        """`action: revoke` on some route: verdicts there revoke through `sink`."""
        self.sink = sink
        self.revoker = Revoker(self.cfg.revoke, self.cfg.max_keys)

    def revoke(self, v: Verdict, ev: Event) -> None:
        revoker, sink = self.revoker, self.sink
        assert revoker is not None and sink is not None
        rev = revoker.decide(v.finding, ev, time.time(), sink.held)
        result = "revoked"
        if rev is None:
            result = "limited" if revoker.limited > self._limited else "not_revoked"
            self._limited = revoker.limited
            if result == "limited":
                logs.event("detection_revocation", level="warning", result="limited",
                           signal=v.kind, route=v.route,
                           max_per_minute=self.cfg.revoke.max_per_minute)
        else:
            sink.send(rev, {"signal": v.kind, "route": v.route, "score": round(v.score, 2)})
        if self._values is not None:
            self._values[self._revoke_slots[result]] += 1

    def emit(self, v: Verdict, ev: Event | None = None) -> None:
        """A verdict's log line, counter and admin record (its flag is already set); with
        action `revoke` (and the event that caused it), the revocation."""
        if v.action == "revoke" and not v.dry_run and ev is not None \
                and self.revoker is not None:
            self.revoke(v, ev)
        record = v.record(time.time())
        logs.event("detection", level="warning",
                   **{k: val for k, val in record.items() if k != "time"})
        if self.ring is not None:
            self.ring.add(record)
        if self._values is not None:
            slot = self._slots.get((v.kind, DRY_RUN if v.dry_run else v.action))
            if slot is not None:
                self._values[slot] += 1
