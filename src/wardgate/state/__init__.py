"""Shared state on Redis (or Redis Cluster): one client layer used by every feature that
must agree across worker processes and machines: global rate limits, the DPoP replay
cache, the revocation stream and shared detection.

    nodes.py       addresses from `state.redis_url`, Cluster key slots (no I/O)
    resp.py        the wire protocol (no I/O)
    script.py      Lua scripts by SHA1, with the body as fallback
    connection.py  one pipelined connection (asyncio protocol, callbacks, deadlines)
    client.py      pools, reconnects with back-off, Cluster redirects
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wardgate.state.connection import StoreError
from wardgate.state.script import BoundScript, Script

if TYPE_CHECKING:
    from wardgate.config.limits import StateConfig
    from wardgate.state.client import StateClient

__all__ = ["BoundScript", "Script", "StateClient", "StoreError", "client_from_config"]


def client_from_config(cfg: StateConfig, *, timeout_s: float | None = None,
                       pool_size: int | None = None) -> StateClient | None:
    """The client for `state:`, or None when no Redis is configured. `timeout_s` and
    `pool_size` override the file's for a client of one purpose (a blocking stream read)."""
    from wardgate.state.client import StateClient
    from wardgate.state.nodes import parse_url

    urls = cfg.urls()
    if not urls:
        return None
    nodes = [parse_url(u, cluster=cfg.cluster) for u in urls]
    if cfg.password_env is not None:
        import os

        password = os.environ[cfg.password_env]
        nodes = [type(n)(n.host, n.port, n.tls, n.username, password, n.db) for n in nodes]
    return StateClient(nodes, cluster=cfg.cluster,
                       timeout_s=timeout_s if timeout_s is not None else cfg.timeout_ms / 1000,
                       pool_size=pool_size if pool_size is not None else cfg.pool_size,
                       ca_file=cfg.tls_ca_file)
