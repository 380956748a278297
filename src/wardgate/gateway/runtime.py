"""A configuration compiled for serving: router, clusters, per-route filters. Built once per
worker at start-up; a reload starts new workers with a new Runtime."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from wardgate.config.gateway import GatewayConfig, RouteConfig
from wardgate.gateway.cors import CorsPolicy
from wardgate.gateway.headers import TrustedProxies
from wardgate.gateway.pipeline import Pipeline
from wardgate.gateway.routing import HostPattern, PathPattern, RouteEntry, Router
from wardgate.gateway.upstream.active import ActiveChecker
from wardgate.gateway.upstream.cluster import Cluster
from wardgate.observe.http import GatewayMetrics
from wardgate.observe.registry import MetricRegistry

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class CompiledRoute:
    __slots__ = (
        "name", "cluster", "max_body", "auth", "cors", "strip_headers", "strip_reserved",
        "preserve_host",
        "websocket", "realm", "_strip", "_rewrite", "_prefix", "path_as_is", "limiter", "metric_id",
        "try_timeout", "total_timeout", "retry_timeouts", "detect", "observed",
    )

    def __init__(self, cfg: RouteConfig, cluster: Cluster, default_max_body: int, server: bytes) -> None:
        self.name = cfg.name
        self.cluster = cluster
        self.max_body = cfg.max_body_bytes if cfg.max_body_bytes is not None else default_max_body
        self.auth: Any = None
        self.cors = CorsPolicy(cfg.cors, server) if cfg.cors is not None else None
        # Identity headers are stripped from every client request, whatever the route's auth.
        self.strip_headers = frozenset(h.lower().encode() for h in cfg.claims_to_headers.values())
        self.strip_reserved = True  # inbound x-wardgate-* dropped here (False: by the auth filter)
        self.preserve_host = cfg.preserve_host
        self.websocket = cfg.websocket
        self.realm = cfg.name
        self.limiter: Any = None  # wardgate.limits.RouteLimiter, when the route has rate_limits
        self.detect: Any = None  # wardgate.detect step, when detection acts on this route
        self.observed = False    # finished requests go to the detector (wardgate.detect)
        self._strip = cfg.strip_prefix
        self._rewrite = cfg.rewrite
        self._prefix = cfg.match.path_prefix is not None
        self.path_as_is = self._rewrite is None and not self._strip  # upstream_path is identity
        self.metric_id = 0  # this route's row in GatewayMetrics (0: metrics off)
        t = cfg.timeouts
        self.try_timeout = t.per_try_s if t.per_try_s is not None else cluster.read_timeout
        self.total_timeout = t.total_s or 0.0
        self.retry_timeouts = t.per_try_s is not None

    def upstream_path(self, path: str, params: dict[str, str], matched: int) -> str:
        """The path sent upstream: as received, minus the matched prefix, or rewritten."""
        rw = self._rewrite
        if rw is None:
            if not self._strip:
                return path
            rest = path[matched:]
            return rest if rest.startswith("/") else "/" + rest
        if params:
            rw = _PARAM.sub(lambda m: params[m.group(1)], rw)
        if not self._prefix:
            return rw
        rest = path[matched:]
        if not rest or rest == "/":
            return rw + rest if not rw.endswith("/") else rw
        return rw.rstrip("/") + rest


class Runtime:
    def __init__(self, cfg: GatewayConfig) -> None:
        self.config = cfg
        self.limits = cfg.limits
        self.timeouts = cfg.timeouts
        self.server = cfg.server_name.encode()
        self.trusted = TrustedProxies(cfg.trusted_proxies)
        self.clusters = {u.name: Cluster(u) for u in cfg.upstreams}
        self.routes: list[CompiledRoute] = []
        entries = []
        for i, rc in enumerate(cfg.routes):
            route = CompiledRoute(rc, self.clusters[rc.upstream], cfg.limits.max_body_bytes, self.server)
            self.routes.append(route)
            m = rc.match
            pattern = m.path if m.path is not None else (m.path_prefix or "/")
            entries.append(RouteEntry(
                host=HostPattern.parse(m.host),
                path=PathPattern.parse(pattern, prefix=m.path is None),
                methods=frozenset(m.methods) if m.methods else None,
                order=i, target=route,
            ))
        self.router = Router(entries)
        self.max_body_any = max(r.max_body for r in self.routes)
        self.tracer: Any = None  # wardgate.trace.Tracer, when the file has `tracing:`
        self.exporter: Any = None  # its OTLP exporter, when spans are exported
        self._compile_tracing()
        self.pipeline = Pipeline(self)
        self.registry: Any = None
        self.state: Any = None  # wardgate.state.StateClient, when state.redis_url is used
        self.revocation: Any = None  # wardgate.revoke.feed.RevocationFeed, with `revocation:`
        self._compile_auth()
        if self.tracer is not None:
            from wardgate.trace import TRACE_HEADERS

            for route in self.routes:  # inbound copies are replaced, never forwarded
                route.strip_headers = route.strip_headers | TRACE_HEADERS
        self._limiters: list[Any] = []
        self._compile_limits()
        self.detection: Any = None  # wardgate.detect.DetectionRuntime, with `detection:`
        self._compile_detection()
        self.metrics = self._declare_metrics()
        self.checkers = [ActiveChecker(self.clusters[u.name], u.health.active)
                         for u in cfg.upstreams if u.health.active is not None]
        self._tasks: list[asyncio.Task[None]] = []
        self._limits_swept = 0.0

    def _declare_metrics(self) -> GatewayMetrics | None:
        """Every series this worker can touch, preallocated. A feature with metrics of its own
        declares its families here, on `metrics.registry`, before the worker freezes it."""
        if not (self.config.admin_enabled and self.config.admin.metrics):
            return None
        metrics = GatewayMetrics(MetricRegistry())
        metrics.declare(self.routes, list(self.clusters.values()))
        for lim in self._limiters:
            lim.declare_metrics(metrics)
        if self.detection is not None:
            self.detection.declare_metrics(metrics)
        if self.registry is not None:
            from wardgate.observe.keysets import KeySetMetrics

            KeySetMetrics(metrics, self.registry)
        if self.revocation is not None:
            from wardgate.observe.revocations import RevocationMetrics

            RevocationMetrics(metrics, self.revocation)
        from wardgate.observe.upstreams import UpstreamMetrics

        UpstreamMetrics(metrics, list(self.clusters.values()))
        if self.exporter is not None:
            from wardgate.trace.metrics import declare_trace_metrics

            declare_trace_metrics(metrics, self.exporter)
        return metrics

    def _compile_tracing(self) -> None:
        cfg = self.config.tracing
        if cfg is None:
            return
        from wardgate.trace import Tracer
        from wardgate.trace.export import exporter_for

        self.tracer = Tracer(cfg, self.trusted)
        http_routes = {rc.name: rc.match.path or rc.match.path_prefix or "/"
                       for rc in self.config.routes}
        self.exporter = exporter_for(self.tracer, cfg, http_routes)

    def _compile_auth(self) -> None:
        if not any(rc.auth != "none" for rc in self.config.routes):
            return
        from wardgate.auth import ProviderRegistry, compile_route_auth

        self.registry = ProviderRegistry.from_config(
            list(self.config.providers), cache_size=self.config.limits.token_cache_entries)
        if self.config.state.urls():
            # DPoP proofs are accepted once across every worker and gateway sharing Redis
            from wardgate.state import client_from_config

            self.state = client_from_config(self.config.state)
        self.registry.enable_dpop(self.config.dpop, self.trusted, self.state)
        if self.config.revocation is not None:
            from wardgate.revoke.feed import RevocationFeed

            # before the routes compile: each reads the feed's health for on_feed_error
            self.registry.on_feed_error = self.config.revocation.on_feed_error
            self.revocation = RevocationFeed(self.config, self.registry)
        for rc, route in zip(self.config.routes, self.routes, strict=True):
            route.auth = compile_route_auth(rc, self.registry)
            if route.auth is not None:
                # The auth filter strips spoofed identity headers and then adds the verified
                # ones; stripping again here would remove what it added.
                route.strip_headers = frozenset()
                route.strip_reserved = False

    def _compile_limits(self) -> None:
        if not any(rc.rate_limits for rc in self.config.routes):
            return
        from wardgate.limits import RouteLimiter

        if any(lim.scope == "global" for rc in self.config.routes for lim in rc.rate_limits):
            from wardgate.state import client_from_config

            if self.state is None:
                self.state = client_from_config(self.config.state)
        for rc, route in zip(self.config.routes, self.routes, strict=True):
            if rc.rate_limits:
                route.limiter = RouteLimiter(list(rc.rate_limits), rc.name, self.trusted,
                                             self.state)
        self._limiters = [r.limiter for r in self.routes if r.limiter is not None]

    def _compile_detection(self) -> None:
        cfg = self.config.detection
        if cfg is None or not cfg.enabled:
            return
        from wardgate.detect import DetectionRuntime

        shared = None
        if cfg.shared and self.config.state.urls():
            from wardgate.detect.remote import SharedTokens
            from wardgate.state import client_from_config

            if self.state is None:
                self.state = client_from_config(self.config.state)
            shared = SharedTokens(self.state, cfg)
        self.detection = DetectionRuntime(self.config, self.routes, shared)
        if not self.detection.routes:
            self.detection = None
        elif "revoke" in self.detection.actions.values() and not cfg.dry_run:
            from wardgate.detect.revoke_sink import RevocationSink

            if self.state is None and self.config.revocation_source() == "redis":
                from wardgate.state import client_from_config

                self.state = client_from_config(self.config.state)
            self.detection.enable_revoke(RevocationSink(self.config, self.state,
                                                        self.revocation))

    async def start(self) -> None:
        if self.state is not None:
            await self.state.start()  # connects in the background; never waits for Redis
        if self.registry is not None:
            await self.registry.start()
        if self.revocation is not None:
            await self.revocation.start()  # the first sync before the first request
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(c.run()) for c in self.checkers]
        if self.detection is not None:
            self.detection.start(loop)
        if self.exporter is not None:
            self.exporter.start()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        if self.detection is not None:
            await self.detection.stop()
        if self.exporter is not None:
            await self.exporter.stop()  # the last spans, bounded by tracing.timeout_ms
        if self.revocation is not None:
            await self.revocation.stop()
        if self.registry is not None:
            await self.registry.stop()
        if self.state is not None:
            await self.state.stop()
        for c in self.clusters.values():
            c.close()

    def sweep(self, now: float) -> None:
        for c in self.clusters.values():
            c.sweep(now)
        if self.revocation is not None:
            self.revocation.sweep(time.time())  # wall clock: entries expire with token exp
        if self._limiters and now >= self._limits_swept + 5.0:
            self._limits_swept = now  # rested keys forgotten every few seconds, not each sweep
            clock = time.monotonic()  # the limiters' clock (see pipeline._limit_then_forward)
            for lim in self._limiters:
                lim.sweep(clock)
