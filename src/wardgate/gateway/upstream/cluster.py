"""An upstream: its targets, each with a pool of idle keep-alive connections and passive health
(plus `up`, which active health checks clear, see active.py)."""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

from wardgate.config.gateway import UpstreamConfig
from wardgate.gateway.upstream.balancer import BALANCERS
from wardgate.gateway.upstream.connection import UpstreamConnection
from wardgate.gateway.upstream.health import PassiveHealth


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
        self.health = PassiveHealth(cfg.health.max_failures, cfg.health.ejection_s,
                                    cfg.health.max_ejection_s)
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
            loop.create_connection(
                lambda: UpstreamConnection(self), self.host, self.port, ssl=self.ssl,
                server_hostname=self.server_hostname,
                ssl_handshake_timeout=self.connect_timeout if self.ssl else None,
            ),
            self.connect_timeout,
        )
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
    def __init__(self, cfg: UpstreamConfig) -> None:
        ctx = _ssl_context(cfg)
        self.name = cfg.name
        self.targets = [Target(t.url, t.weight, cfg, ctx) for t in cfg.targets]
        self.balancer = BALANCERS[cfg.balancer]()
        self.read_timeout = cfg.timeouts.read_s

    def pick(self, now: float, exclude: Target | None = None) -> Target | None:
        targets = self.targets
        if len(targets) == 1:
            t = targets[0]
            return t if t is not exclude and t.health.ejected_until <= now and t.up else None
        healthy = [t for t in targets if t.health.ejected_until <= now and t.up]
        return self.balancer.pick(healthy, exclude)  # type: ignore[return-value]

    def sweep(self, now: float) -> None:
        for t in self.targets:
            t.sweep(now)

    def close(self) -> None:
        for t in self.targets:
            t.close_all()
