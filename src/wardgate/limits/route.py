"""A route's rate limits as one pipeline step, compiled once per route.

Local limits are decided in the worker at once; global ones by one Redis script call each,
pipelined with every other decision of the same loop turn, and only routes that have a global
limit ever wait for one. A request must pass every limit: the local ones are checked first
(all of them, and counted only when all pass), then the global ones.

Every answer of a limited route carries the IETF `RateLimit-Policy` and `RateLimit` fields
(draft-ietf-httpapi-ratelimit-headers, Structured Fields) of its most restrictive limit: the
one with the least quota left, or the one that refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wardgate.errors import GatewayError, RateLimited, ServiceUnavailable
from wardgate.limits import remote
from wardgate.limits.gcra import (
    ALLOWED,
    EPS,
    REMAINING,
    RESET_AFTER,
    RETRY_AFTER,
    TAT,
    Decision,
    Gcra,
    LocalBuckets,
)
from wardgate.limits.keys import KeyFn, compile_key
from wardgate.observe.http import declare_ratelimit

if TYPE_CHECKING:
    from wardgate.config.limits import RateLimitConfig
    from wardgate.gateway.headers import TrustedProxies
    from wardgate.gateway.request import Request
    from wardgate.observe.http import GatewayMetrics
    from wardgate.state.client import StateClient

Resume = Callable[[GatewayError | None], None]


#: indices into Limit.slots (wardgate_ratelimit_decisions_total's result label)
ALLOWED_SLOT, LIMITED_SLOT, STORE_ERROR_SLOT = 0, 1, 2


class Limit:
    __slots__ = ("name", "key", "gcra", "buckets", "bound", "deny_on_error", "policy",
                 "field_head", "route", "_lines", "_buckets", "values", "slots")

    def __init__(self, cfg: RateLimitConfig, route: str, trusted: TrustedProxies) -> None:
        self.name = cfg.name
        self.route = route
        self.key: KeyFn = compile_key(cfg.key, route, trusted)
        count, period = cfg.count_period()
        self.gcra = Gcra(count, period, cfg.burst)
        self.buckets = LocalBuckets(self.gcra, cfg.max_keys) if cfg.scope == "local" else None
        self.bound = remote.bind(self.gcra) if cfg.scope == "global" else None
        self.deny_on_error = cfg.on_store_error == "deny"
        # draft-ietf-httpapi-ratelimit-headers §3: the policy is a String item with q and w
        self.policy = b'"%s";q=%d;w=%d' % (cfg.name.encode(), count, period)
        self.field_head = b'"%s";r=' % cfg.name.encode()
        self._lines: dict[int, bytes] = {}
        self._buckets: dict[str, bytes] = {}
        # decision counters (observe/): the metric array and this limit's three slots, set
        # when the worker keeps metrics
        self.values: Any = None
        self.slots: tuple[int, ...] = ()

    def count(self, result: int) -> None:
        v = self.values
        if v is not None:
            v[self.slots[result]] += 1

    def bucket(self, key: str) -> bytes:
        """The Redis key of a bucket, built once per key seen (bounded)."""
        out = self._buckets.get(key)
        if out is None:
            out = remote.bucket_key(self.route, self.name, key)
            if len(self._buckets) >= 4096:
                self._buckets.clear()
            self._buckets[key] = out
        return out

    def fields(self, d: Decision) -> list[tuple[bytes, bytes]]:
        # t: whole seconds; for a refusal the wait, so Retry-After and t agree (§6)
        t = math.ceil(d[RESET_AFTER] if d[ALLOWED] else d[RETRY_AFTER])
        return [(b"RateLimit-Policy", self.policy),
                (b"RateLimit", self.field_head + b"%d;t=%d" % (d[REMAINING], t))]

    def lines(self, d: Decision) -> bytes:
        """The two field lines of an allowed request, rendered once per (r, t) seen."""
        return self.lines_for(int(d[REMAINING]), math.ceil(d[RESET_AFTER]))

    def lines_for(self, remaining: int, t: int) -> bytes:
        key = remaining << 32 | t
        out = self._lines.get(key)
        if out is None:
            out = (b"\r\nRateLimit-Policy: " + self.policy + b"\r\nRateLimit: " + self.field_head
                   + b"%d;t=%d" % (remaining, t))
            if len(self._lines) < 1024:
                self._lines[key] = out
        return out


def _single_local(lim: Limit) -> Callable[[Request, float], None]:
    """The compiled step of a route with one local limit (the common case): GCRA.decide and
    LocalBuckets.commit fused into one function with everything bound at start-up, and the
    decision counters (when the worker keeps metrics) counted inline. test_gcra checks it
    decides exactly as LocalBuckets.take.

    A key at rest (its TAT passed, or new) is the common case of a limit that is not being
    approached; its decision is always the same (full quota after this request, reset after
    one interval), so its field lines are rendered once, here."""
    key_fn = lim.key
    buckets = lim.buckets
    assert buckets is not None
    tats = buckets.tats
    get = tats.get
    cap = buckets.max_keys
    make_room = buckets._make_room
    gcra = lim.gcra
    interval = gcra.interval
    tolerance = gcra.tolerance
    limit = tolerance + EPS
    cache = lim._lines
    lines_for = lim.lines_for
    rested = gcra.decide(0.0, 1.0)
    rested_fields = lim.lines(rested)
    values = lim.values
    counted = values is not None
    allowed_slot, limited_slot = lim.slots[ALLOWED_SLOT:LIMITED_SLOT + 1] if counted else (0, 0)

    def apply(req: Request, now: float) -> None:
        key = key_fn(req)
        tat = get(key)
        if tat is None or tat <= now:
            if tat is None and len(tats) >= cap:
                make_room(now)
            tats[key] = now + interval
            req.resp_fields = rested_fields
            if counted:
                values[allowed_slot] += 1
            return
        ahead = tat - now
        if ahead > limit:
            if counted:
                values[limited_slot] += 1
            raise _refusal(req, lim, (False, 0, ahead - tolerance, ahead, tat))
        new_tat = tat + interval
        tats[key] = new_tat
        used = new_tat - now
        remaining = int((tolerance + interval - used) / interval + EPS)
        t = int(used)
        if t < used:
            t += 1
        out = cache.get(remaining << 32 | t)
        req.resp_fields = out if out is not None else lines_for(remaining, t)
        if counted:
            values[allowed_slot] += 1

    return apply


class RouteLimiter:
    __slots__ = ("local", "remote", "client", "apply")

    def __init__(self, configs: list[RateLimitConfig], route: str, trusted: TrustedProxies,
                 client: StateClient | None) -> None:
        limits = [Limit(c, route, trusted) for c in configs]
        self.local = [lim for lim in limits if lim.buckets is not None]
        self.remote = [lim for lim in limits if lim.bound is not None]
        if self.remote and client is None:
            raise ValueError("global rate limits need state.redis_url")  # also checked at load
        self.client = client
        if client is not None and self.remote:
            client.register(remote.SCRIPT)
        self.apply: Callable[[Request, float], None] = (
            _single_local(self.local[0]) if len(self.local) == 1 and not self.remote
            else self._apply)

    # -- local ---------------------------------------------------------------------------------
    def check(self, req: Request, now: float) -> tuple[Limit, Decision] | None:
        """Decide the local limits (all or none counted); raise RateLimited on a refusal.
        Returns the most restrictive (limit, decision), or None without local limits."""
        local = self.local
        if len(local) == 1:
            lim = local[0]
            key = lim.key(req)
            d = lim.buckets.peek(key, now)  # type: ignore[union-attr]
            if not d[ALLOWED]:
                lim.count(LIMITED_SLOT)
                raise _refusal(req, lim, d)
            lim.buckets.commit(key, d[TAT], now)  # type: ignore[union-attr]
            lim.count(ALLOWED_SLOT)
            return lim, d
        best: tuple[Limit, Decision] | None = None
        staged = []
        for lim in local:
            key = lim.key(req)
            d = lim.buckets.peek(key, now)  # type: ignore[union-attr]
            if not d[ALLOWED]:
                lim.count(LIMITED_SLOT)  # the limits before it decided nothing: not counted
                raise _refusal(req, lim, d)
            staged.append((lim, key, d[TAT]))
            if best is None or d[REMAINING] < best[1][REMAINING]:
                best = (lim, d)
        for lim, key, tat in staged:
            lim.buckets.commit(key, tat, now)  # type: ignore[union-attr]
            lim.count(ALLOWED_SLOT)
        return best

    def _apply(self, req: Request, now: float) -> None:
        """The whole step for a route with local limits only (`apply`, unless specialised)."""
        best = self.check(req, now)
        if best is not None:
            req.resp_fields = best[0].lines(best[1])

    # -- global --------------------------------------------------------------------------------
    def start(self, req: Request, now: float, resume: Resume) -> None:
        """Local limits now, then the global ones; `resume(None)` to forward the request,
        `resume(err)` to answer it. Raises RateLimited when a local limit refuses."""
        best = self.check(req, now) if self.local else None
        _Decisions(self, req, best, resume).send()

    def declare_metrics(self, metrics: GatewayMetrics) -> None:
        """Declare this route's decision counters; they count once the worker maps them."""
        limits = self.local + self.remote
        for lim in limits:
            lim.slots = declare_ratelimit(metrics.registry, lim.route, lim.name)

        def bind(values: Any) -> None:
            for lim in limits:
                lim.values = values
            if self.apply != self._apply:  # the fused step reads the array when compiled
                self.apply = _single_local(self.local[0])

        metrics.on_bind(bind)

    def sweep(self, now: float) -> None:
        for lim in self.local:
            lim.buckets.sweep(now)  # type: ignore[union-attr]


def _refusal(req: Request, lim: Limit, d: Decision) -> RateLimited:
    req.rate_limit = lim.name
    return RateLimited(math.ceil(d[RETRY_AFTER]), f"rate limit {lim.name!r} exceeded",
                       fields=lim.fields(d), policies=[lim.name])


class _Decisions:
    """The global decisions of one request, gathered as their replies come in."""

    __slots__ = ("limiter", "req", "best", "resume", "waiting", "refused", "store_failed")

    def __init__(self, limiter: RouteLimiter, req: Request, best: tuple[Limit, Decision] | None,
                 resume: Resume) -> None:
        self.limiter = limiter
        self.req = req
        self.best = best
        self.resume = resume
        self.waiting = len(limiter.remote)
        self.refused: tuple[Limit, Decision] | None = None
        self.store_failed: Limit | None = None

    def send(self) -> None:
        client = self.limiter.client
        req = self.req
        for lim in self.limiter.remote:
            key = lim.bucket(lim.key(req))
            client.run(lim.bound, key, lambda reply, lim=lim: self.reply(lim, reply))  # type: ignore[union-attr,misc,arg-type]

    def reply(self, lim: Limit, reply: Any) -> None:
        d = remote.parse_reply(reply)
        lim.count(STORE_ERROR_SLOT if d is None else ALLOWED_SLOT if d[ALLOWED] else LIMITED_SLOT)
        if d is None:
            if lim.deny_on_error and self.store_failed is None:
                self.store_failed = lim
        elif not d[ALLOWED]:
            r = self.refused
            if r is None or d[RETRY_AFTER] > r[1][RETRY_AFTER]:
                self.refused = (lim, d)
        else:
            b = self.best
            if b is None or d[REMAINING] < b[1][REMAINING]:
                self.best = (lim, d)
        self.waiting -= 1
        if self.waiting:
            return
        req = self.req
        if self.refused is not None:
            lim, d = self.refused
            self.resume(_refusal(req, lim, d))
        elif self.store_failed is not None:
            req.rate_limit = self.store_failed.name
            self.resume(ServiceUnavailable("rate limit state unavailable",
                                           code="ratelimit_store_unavailable", retry_after_s=1))
        else:
            if self.best is not None:
                req.resp_fields = self.best[0].lines(self.best[1])
            self.resume(None)
