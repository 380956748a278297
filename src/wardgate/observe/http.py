"""The gateway's own metric families, and the one call a finished request makes.

`GatewayMetrics.declare` runs once per worker at start-up (after the routes are compiled) and
preallocates every series; the closure `finisher` makes is called from the single place a
request ends (WorkerState.log, next to the access log line, or as the whole of it) and only
indexes lists and adds numbers.

Other features plug in by declaring their families on `GatewayMetrics.registry` before the
worker freezes it (in `Runtime._declare_metrics`) and registering `on_bind` for the array:
e.g. the rate limiter calls `declare_ratelimit(registry, route, limit)` per compiled limit and
keeps the three slots.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from wardgate.observe.registry import DURATION_BUCKETS_S, MetricRegistry

try:  # the closure of `finisher` in C (observe/_finish.c), when the install could build it
    from wardgate.observe._finish import Finisher as _CFinisher
except ImportError:  # no compiler at install time: the Python closure, which is the reference
    _CFinisher = None
#: whether `finisher` returns the C closure (WARDGATE_PURE_PYTHON=1: the Python one)
ACCELERATED = _CFinisher is not None and os.environ.get("WARDGATE_PURE_PYTHON") != "1"

if TYPE_CHECKING:
    from wardgate.gateway.request import Request

METHOD_NAMES = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "_OTHER")
METHOD_INDEX = {m: i for i, m in enumerate(METHOD_NAMES)}
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: the access log's auth outcome codes (docs/auth.md); anything else counts as "other"
AUTH_OUTCOMES = (
    "ok", "anonymous", "no_token", "malformed_token", "multiple_authorization",
    "conflicting_tokens", "empty_token", "oversize", "malformed", "jwe", "duplicate_key",
    "too_deep", "bad_iss", "unknown_issuer", "alg_none", "alg_not_allowed", "alg_key_mismatch",
    "embedded_key", "crit", "b64", "nested", "bad_typ", "unknown_kid", "bad_signature",
    "expired", "not_yet_valid", "bad_iat", "bad_exp", "bad_aud", "missing_claim", "bad_claim",
    "lifetime", "revoked", "insufficient_scope", "forbidden", "keys_unavailable", "csrf_failed",
    "revocation_stale", "step_up", "detection_denied",
    # DPoP (wardgate.dpop, docs/auth.md#dpop-rfc-9449)
    "dpop_missing_proof", "dpop_multiple_proofs", "dpop_bad_target", "dpop_malformed",
    "dpop_oversize", "dpop_bad_typ", "dpop_bad_alg", "dpop_bad_header", "dpop_missing_jwk",
    "dpop_private_key", "dpop_bad_jwk", "dpop_bad_signature", "dpop_bad_jti", "dpop_bad_htm",
    "dpop_bad_htu", "dpop_bad_iat", "dpop_iat_too_old", "dpop_iat_in_future",
    "dpop_missing_ath", "dpop_bad_ath", "dpop_key_mismatch", "dpop_nonce_required",
    "dpop_bad_nonce", "dpop_replayed", "dpop_replay_cache_full", "dpop_store_error",
    "dpop_unbound_token", "dpop_bound_as_bearer", "dpop_required", "dpop_unsupported",
    "other")
#: requests that matched no route (404, or refused before routing)
NO_ROUTE = "-"
#: statuses that can be a refusal of the caller (auth, authorization, rate limits)
REFUSAL_STATUSES = frozenset((400, 401, 403, 429, 503))
#: status -> index in STATUS_CLASSES (anything outside 100-599 counts as 5xx)
_STATUS_CLASS = tuple(min(max(s // 100 - 1, 0), 4) if s >= 100 else 4 for s in range(600))

DURATION = "wardgate_http_server_request_duration_seconds"
AUTH_DECISIONS = "wardgate_auth_decisions_total"
RATELIMIT_DECISIONS = "wardgate_ratelimit_decisions_total"
UPSTREAM_DURATION = "wardgate_upstream_request_duration_seconds"
RATELIMIT_RESULTS = ("allowed", "limited", "store_error")


def declare_ratelimit(reg: MetricRegistry, route: str, limit: str) -> tuple[int, ...]:
    """The slots of one route's limit, one per result in RATELIMIT_RESULTS (for limits/)."""
    fam = reg.family(RATELIMIT_DECISIONS, "counter", "Rate-limit decisions",
                     ("route", "limit", "result"))
    return tuple(reg.series(fam, route, limit, r) for r in RATELIMIT_RESULTS)


class GatewayMetrics:
    __slots__ = ("registry", "values", "_rows", "_bounds", "_nb",
                 "_conn_slot", "_refused_slot", "_health", "_cpu", "_rss", "_started", "_bind_hooks",
                 "_sample_hooks")

    def __init__(self, registry: MetricRegistry) -> None:
        self.registry = registry
        self.values: Any = None
        self._bounds = DURATION_BUCKETS_S
        self._nb = len(DURATION_BUCKETS_S)
        # per route id (CompiledRoute.metric_id; 0 is NO_ROUTE): the duration slots by
        # [method][status class], the auth outcome slots, the body byte slots (in, out)
        # and the upstream duration histogram of each of its upstream's targets (by URL)
        self._rows: list[tuple[list[list[int]], dict[str, int] | None, int, int,
                               dict[str, int]]] = []
        self._conn_slot = self._refused_slot = 0
        self._health: list[tuple[Any, int]] = []
        self._cpu = self._rss = self._started = 0
        self._bind_hooks: list[Callable[[Any], None]] = []
        self._sample_hooks: list[Callable[[float], None]] = []

    def on_bind(self, hook: Callable[[Any], None]) -> None:
        """`hook(values)` once the slots are mapped: how a feature that declared series of its
        own gets the array it increments."""
        self._bind_hooks.append(hook)

    def on_sample(self, hook: Callable[[float], None]) -> None:
        """`hook(now)` from the worker's sweeper, with the gauges: a feature's own gauges
        (`now`: the loop's clock)."""
        self._sample_hooks.append(hook)

    def declare(self, routes: Sequence[Any], clusters: Sequence[Any]) -> None:
        """Preallocate every series; gives each route its `metric_id`."""
        reg = self.registry
        dur = reg.family(DURATION, "histogram", "Duration of HTTP server requests",
                         ("route", "method", "status_class"), DURATION_BUCKETS_S)
        auth = reg.family(AUTH_DECISIONS, "counter",
                          "Authentication/authorization outcomes (the access log's codes)",
                          ("route", "outcome"))
        body_in = reg.family("wardgate_http_server_request_body_size_bytes_total", "counter",
                             "Request body bytes received", ("route",))
        body_out = reg.family("wardgate_http_server_response_body_size_bytes_total", "counter",
                              "Response bytes sent to clients", ("route",))
        up_dur = reg.family(UPSTREAM_DURATION, "histogram", "Duration of requests proxied to "
                            "an upstream target, from arrival to the last byte sent back "
                            "(the gateway's own share is microseconds)", ("upstream", "target"),
                            DURATION_BUCKETS_S)
        per_target = {(c.name, t.url): reg.series(up_dur, c.name, t.url)
                      for c in clusters for t in c.targets}
        names = [NO_ROUTE] + [r.name for r in routes]
        authed = [False] + [r.auth is not None for r in routes]
        ups = [None] + [r.cluster for r in routes]
        for i, name in enumerate(names):
            cl = ups[i]
            self._rows.append((
                [[reg.series(dur, name, m, sc) for sc in STATUS_CLASSES] for m in METHOD_NAMES],
                {o: reg.series(auth, name, o) for o in AUTH_OUTCOMES} if authed[i] else None,
                reg.series(body_in, name), reg.series(body_out, name),
                {} if cl is None else {t.url: per_target[(cl.name, t.url)]
                                       for t in cl.targets}))
        for i, r in enumerate(routes, start=1):
            r.metric_id = i
        conns = reg.family("wardgate_http_server_active_connections", "gauge",
                           "Open client connections")
        self._conn_slot = reg.series(conns)
        self._refused_slot = reg.series(reg.family(
            "wardgate_http_server_connections_refused_total", "counter",
            "Connections answered 503 and closed because the worker held limits.max_connections"))
        health = reg.family("wardgate_upstream_target_healthy", "gauge",
                            "1 while the target is in the balancer (max over workers)",
                            ("upstream", "target"), mode="max")
        for c in clusters:
            for t in c.targets:
                self._health.append((t, reg.series(health, c.name, t.url)))
        self._cpu = reg.series(reg.family(
            "wardgate_process_cpu_microseconds_total", "counter",
            "CPU time of the worker processes (user + system)"))
        self._rss = reg.series(reg.family(
            "wardgate_process_resident_memory_bytes", "gauge", "Resident memory of the workers"))
        self._started = reg.series(reg.family(
            "wardgate_worker_starts_total", "counter", "Worker processes started"))

    def bind(self) -> None:
        """After `registry.freeze()`."""
        self.values = self.registry.values
        self.values[self._started] = 1
        for hook in self._bind_hooks:
            hook(self.values)

    def finisher(self, clock: Callable[[], float],
                 refused: Callable[[Request, int], None],
                 observe: Callable[[tuple[Any, ...]], None] | None = None,
                 accelerated: bool | None = None) -> Callable[..., None]:
        """The metrics update of a finished request, taking the time itself, as one closure
        over the slots: what WorkerState.log calls after the access log line, and what it
        becomes when there is no access log. `refused(req, status)` gets the
        answers that may be a refusal of the caller (for the denials ring); `observe`, with
        detection, the finished requests of watched routes (the detector's buffer append:
        fused here, as a wrapper it cost a call per request). Call after bind.

        `accelerated` (default: ACCELERATED) picks the C closure, observe/_finish.c: the
        same slots in the same order (bench/instructions.py: metrics' share of a plain
        request +3,393 instructions with it, +7,468 with this one)."""
        v = self.values
        use_c = ACCELERATED if accelerated is None else accelerated
        if use_c:
            if _CFinisher is None:
                raise RuntimeError("wardgate.observe._finish was not built")
            return _CFinisher(clock, v, self._rows, self._bounds, METHOD_INDEX,  # type: ignore[no-any-return]
                              refused, REFUSAL_STATUSES, observe)
        rows = self._rows
        bounds = self._bounds
        sum_at = self._nb + 1
        method_index = METHOD_INDEX.get
        status_class = _STATUS_CLASS
        refusals = REFUSAL_STATUSES

        def done(req: Request, status: int, bytes_in: int, bytes_out: int, target: str,
                 error: str | None, retried: str | None = None) -> None:
            start = req.start
            seconds = clock() - start if start else 0.0
            route = req.route
            dur, auth, bi, bo, targets = rows[route.metric_id if route is not None else 0]
            base = dur[method_index(req.method, 8)][status_class[status] if status < 600 else 4]
            bucket = bisect_left(bounds, seconds)
            v[base + bucket] += 1
            v[base + sum_at] += seconds  # float seconds (registry.py)
            if target in targets:
                tb = targets[target]
                v[tb + bucket] += 1
                v[tb + sum_at] += seconds
            if auth is not None:
                outcome = req.auth_outcome
                if outcome != "-":
                    v[auth.get(outcome, auth["other"])] += 1
            if bytes_in:
                v[bi] += bytes_in
            if bytes_out:
                v[bo] += bytes_out
            if status in refusals:
                refused(req, status)
            if observe is not None and route is not None and route.observed:
                # detect/adapter.py's item layout: its run key first, then the rest
                observe((route, req.identity, req.client_ip, req.method, req.path,
                         req.auth_outcome, status, req.headers, req.params, req.start,
                         bytes_out))
        return done

    def sample(self, connections: int, now: float, refused: int = 0) -> None:
        """Gauges, from the worker's sweeper (a few times a second, not per request); `now`
        is the loop's clock, the one passive ejections are stamped with; `refused`: the
        connections refused by the worker's cap so far."""
        v = self.values
        v[self._conn_slot] = connections
        v[self._refused_slot] = refused
        for t, slot in self._health:
            v[slot] = 1 if t.up and t.health.ejected_until <= now else 0
        cpu = os.times()
        v[self._cpu] = int((cpu.user + cpu.system) * 1e6)
        v[self._rss] = _rss_bytes()
        for hook in self._sample_hooks:
            hook(now)
        self.registry.publish()


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
