"""An upstream: its targets, each with a pool of idle keep-alive connections and passive health
(plus `up`, which active health checks clear, see active.py)."""

from __future__ import annotations

import asyncio
import math
import random
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from wardgate.config.gateway import UpstreamConfig
from wardgate.gateway.upstream.balancer import BALANCERS, HashRing, stable_hash
from wardgate.gateway.upstream.breaker import Breaker
from wardgate.gateway.upstream.connection import UpstreamConnection
from wardgate.gateway.upstream.health import STATE_NAMES, ErrorRateWindow, PassiveHealth


class Target:
    __slots__ = (
        "url", "host", "port", "authority", "host_line", "ssl", "server_hostname", "weight", "active",
        "health", "idle", "open", "max_idle", "idle_timeout", "connect_timeout", "_loop", "up",
    )

    def __init__(self, url: str, weight: int, cfg: UpstreamConfig, ctx: ssl.SSLContext | None) -> None:
        u = urlsplit(url)
        self.url = url
        self.host = u.hostname or ""
        tls = u.scheme == "https"
        self.port = u.port or (443 if tls else 80)
        default = (tls and self.port == 443) or (not tls and self.port == 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = (host if default else f"{host}:{self.port}").encode()
        self.host_line = b"Host: " + self.authority + b"\r\n"
        self.ssl = ctx if tls else None
        self.server_hostname = (cfg.tls.server_name or self.host) if tls else None
        self.weight = weight
        self.active = 0
        self.up = True  # False while active health checks fail it
        h = cfg.health
        rate = None if h.error_rate is None else ErrorRateWindow(
            h.error_rate.window_s, h.error_rate.threshold, h.error_rate.min_requests)
        self.health = PassiveHealth(h.max_failures, h.ejection_s, h.max_ejection_s,
                                    fail_statuses=frozenset(h.failure_statuses), rate=rate,
                                    slow_start_s=h.slow_start_s)
        self.idle: list[UpstreamConnection] = []   # LIFO: the warmest connection first
        self.open: set[UpstreamConnection] = set()
        self.max_idle = cfg.pool.max_size
        self.idle_timeout = cfg.pool.idle_timeout_s
        self.connect_timeout = cfg.timeouts.connect_s
        self._loop: asyncio.AbstractEventLoop | None = None

    def take_idle(self) -> UpstreamConnection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed and not conn.transport.is_closing():
                return conn
        return None

    async def connect(self) -> UpstreamConnection:
        # Kept for release(): get_running_loop() costs a getpid() syscall per call.
        self._loop = loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(  # type: ignore[type-var]  # a protocol without the base class
                lambda: UpstreamConnection(self), self.host, self.port, ssl=self.ssl,
                server_hostname=self.server_hostname,
                ssl_handshake_timeout=self.connect_timeout if self.ssl else None,
            ),
            self.connect_timeout,
        )
        if conn.closed:
            # Accepted, then closed or reset before this coroutine resumed (a target dying
            # with connections in its accept queue, or one that closes at once): its
            # connection_lost has run with no exchange to tell, so a request attached now
            # would be written nowhere and wait for the read timeout. Nothing was sent yet.
            raise ConnectionResetError("upstream closed the connection as it was opened")
        self.open.add(conn)
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        if len(self.idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = self._loop.time()  # type: ignore[union-attr]
        self.idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        self.open.discard(conn)
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def sweep(self, now: float) -> None:
        """Close connections idle for longer than the pool's idle timeout."""
        limit = now - self.idle_timeout
        if self.idle and self.idle[0].idle_since < limit:
            stale = [c for c in self.idle if c.idle_since < limit]
            self.idle = [c for c in self.idle if c.idle_since >= limit]
            for c in stale:
                c.close()

    def close_all(self) -> None:
        for conn in list(self.open):
            conn.close()
        self.idle.clear()


def _ssl_context(cfg: UpstreamConfig) -> ssl.SSLContext | None:
    if not any(t.url.startswith("https://") for t in cfg.targets):
        return None
    ctx = ssl.create_default_context(cafile=cfg.tls.ca_file)
    if not cfg.tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class Cluster:
    """The targets of one upstream, the balancer over them and the circuit breaker.

    `watch` counts the targets that are not serving at full share (ejected, half-open, slow
    starting or down by active checks): while it is 0, `pick` hands the balancer the whole
    list without filtering, so a healthy upstream pays nothing for outlier detection."""

    def __init__(self, cfg: UpstreamConfig, rng: Callable[[], float] = random.random) -> None:
        ctx = _ssl_context(cfg)
        self.name = cfg.name
        self.targets = [Target(t.url, t.weight, cfg, ctx) for t in cfg.targets]
        self.single = self.targets[0] if len(self.targets) == 1 else None
        self.ring = HashRing(self.targets) if cfg.balancer == "hash" else None
        self.balancer = None if self.ring is not None else BALANCERS[cfg.balancer]()
        self.key_of = _key_function(cfg.hash_key)
        self.read_timeout = cfg.timeouts.read_s
        cb = cfg.circuit_breaker
        self.breaker = Breaker(cb.max_requests, cb.max_pending, cb.retry_budget.percent,
                               cb.retry_budget.min_retries)
        self.retry_after_s = cb.retry_after_s
        self.watch = 0
        self._rng = rng

    def pick(self, now: float, exclude: Target | None = None, req: Any = None) -> Target | None:
        if not self.watch:
            if self.ring is not None:
                return self._pick_hashed(now, exclude, req)
            t = self.single
            if t is not None:
                return None if t is exclude else t
            return self.balancer.pick(self.targets, exclude)  # type: ignore[union-attr, return-value]
        return self._pick_watched(now, exclude, req)

    def _pick_watched(self, now: float, exclude: Target | None, req: Any) -> Target | None:
        """Some target is not at full share: filter by health, ramp slow starters."""
        if self.ring is not None:
            found = self._pick_hashed(now, exclude, req)
        else:
            usable: list[tuple[Target, float]] = []
            ramping: list[tuple[Target, float]] = []
            for t in self.targets:
                if t.up and t is not exclude and t.health.available(now, t.active):
                    share = t.health.share(now)
                    (usable if share >= 1.0 else ramping).append((t, share))
            # Slow start: a returning target takes a request with probability `share`.
            healthy = [t for t, _ in usable]
            for t, share in ramping:
                if not healthy or self._rng() < share:
                    healthy.append(t)
            found = self.balancer.pick(healthy, None) if healthy else None  # type: ignore[union-attr]
        self.refresh(now)
        return found  # type: ignore[return-value]

    def _pick_hashed(self, now: float, exclude: Target | None, req: Any) -> Target | None:
        key = self.key_of(req) if req is not None else None  # type: ignore[misc]
        if key is None:
            # no key on this request: the client address, so keyless callers still spread
            key = req.client_ip.encode() if req is not None and req.client_ip else b""
        watched = self.watch

        def usable(t: Target) -> bool:
            if t is exclude or not t.up:
                return False
            return not watched or t.health.available(now, t.active)

        return self.ring.lookup(stable_hash(key), usable)  # type: ignore[union-attr, no-any-return]

    def refresh(self, now: float) -> None:
        """Recount the targets not at full share (after a health change; cheap, rare)."""
        self.watch = sum(1 for t in self.targets if not (t.up and t.health.calm(now)))

    def retry_after(self, now: float) -> int:
        """Seconds until the first ejected target may be tried again (at least 1)."""
        waits = [t.health.ejected_until - now for t in self.targets
                 if t.up and t.health.ejected_until > now]
        return max(1, min(3600, math.ceil(min(waits)))) if waits else self.retry_after_s

    def snapshot(self, now: float) -> dict[str, Any]:
        """The breaker's counters and every target's health, for metrics and the admin API."""
        targets = []
        for t in self.targets:
            h = t.health
            rate = h.rate.rate(now) if h.rate is not None else None
            targets.append({
                "url": t.url, "up": t.up, "state": STATE_NAMES[h.state], "active": t.active,
                "ejections": h.ejections, "failures": h.failures,
                "ejected_for_s": max(0.0, h.ejected_until - now), "share": h.share(now),
                "open_connections": len(t.open), "idle_connections": len(t.idle),
                "window": None if rate is None else {"requests": rate[0], "failures": rate[1]},
            })
        return {"name": self.name, "breaker": self.breaker.snapshot(), "targets": targets}

    def sweep(self, now: float) -> None:
        for t in self.targets:
            t.sweep(now)
        if self.watch:
            self.refresh(now)

    def close(self) -> None:
        for t in self.targets:
            t.close_all()


def _key_function(spec: str | None) -> Callable[[Any], bytes | None] | None:
    """The request's hash key: a header's value, a verified claim, or the client address."""
    if spec is None:
        return None
    if spec == "client_ip":
        return lambda req: req.client_ip.encode()
    kind, _, name = spec.partition(":")
    if kind == "header":
        lname = name.lower().encode()
        return lambda req: req.header(lname)

    def claim(req: Any) -> bytes | None:
        ident = req.identity
        value = ident.claims.get(name) if ident is not None else None
        return None if value is None else str(value).encode()

    return claim
