"""Active health checks: every `interval_s`, a GET of the configured path on each target over a
fresh connection. A target that fails `unhealthy_threshold` probes in a row leaves the
balancer (Target.up = False) until it passes `healthy_threshold` in a row.

Each worker probes on its own (as Kong's workers do), so N workers send N probes per interval;
the state is per worker and needs no coordination. Targets start up: a worker does not wait
for a first round before serving, and passive health still ejects a target that fails real
requests in the meantime.
"""

from __future__ import annotations

import asyncio
import random
import re

from wardgate import logs
from wardgate.config.gateway import ActiveHealthConfig
from wardgate.gateway.upstream.cluster import Cluster, Target

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: [^\r\n]*)?\r?\n")
_MAX_LINE = 1024


class ActiveChecker:
    """Probes one cluster's targets; `run` is the worker's background task for it."""

    def __init__(self, cluster: Cluster, cfg: ActiveHealthConfig) -> None:
        self.cluster = cluster
        self.cfg = cfg
        self.expect = frozenset(cfg.expect_status)
        self._passes: dict[Target, int] = {t: 0 for t in cluster.targets}
        self._fails: dict[Target, int] = {t: 0 for t in cluster.targets}

    async def run(self) -> None:
        # A random start spreads the probes of several workers (and clusters) over the interval.
        await asyncio.sleep(random.uniform(0, min(1.0, self.cfg.interval_s)))
        while True:
            await asyncio.gather(*(self.check(t) for t in self.cluster.targets))
            await asyncio.sleep(self.cfg.interval_s)

    async def check(self, target: Target) -> None:
        ok, why = await self.probe(target)
        self.record(target, ok, why, asyncio.get_running_loop().time())

    def record(self, target: Target, ok: bool, why: str, now: float = 0.0) -> None:
        """Count one probe's outcome; flip the target at its threshold (sans-I/O)."""
        if ok:
            self._fails[target] = 0
            self._passes[target] += 1
            if not target.up and self._passes[target] >= self.cfg.healthy_threshold:
                target.up = True
                target.health.since = now  # back in: its slow start begins
                self.cluster.refresh(now)
                logs.event("target_up", upstream=self.cluster.name, target=target.url)
        else:
            self._passes[target] = 0
            self._fails[target] += 1
            if target.up and self._fails[target] >= self.cfg.unhealthy_threshold:
                target.up = False
                self.cluster.refresh(now)
                logs.event("target_down", level="warning", upstream=self.cluster.name,
                           target=target.url, reason=why)

    async def probe(self, target: Target) -> tuple[bool, str]:
        """(passed, reason): one GET over a new connection, judged by its status line."""
        request = (b"GET " + self.cfg.path.encode() + b" HTTP/1.1\r\nHost: " + target.authority
                   + b"\r\nUser-Agent: wardgate-health\r\nConnection: close\r\n\r\n")
        writer = None
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                reader, writer = await asyncio.open_connection(
                    target.host, target.port, ssl=target.ssl,
                    server_hostname=target.server_hostname, limit=_MAX_LINE)
                writer.write(request)
                line = await reader.readuntil(b"\n")
        except TimeoutError:
            return False, "timeout"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            return False, type(exc).__name__
        finally:
            if writer is not None:
                writer.close()
        m = _STATUS_LINE.fullmatch(line)
        if m is None:
            return False, "malformed_status_line"
        status = int(m.group(1))
        return (status in self.expect), f"status {status}"
