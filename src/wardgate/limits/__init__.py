"""Rate limiting: GCRA per key, local to a worker or global on Redis, one pipeline step.

    gcra.py    the arithmetic and the bounded per-worker table (no I/O)
    keys.py    what a limit counts by (sub, client_id, ip, route, header:NAME, claim:PATH)
    remote.py  the same arithmetic as one Redis script call (adapter over wardgate.state)
    route.py   a route's limits compiled into one step, and the RateLimit fields
"""

from __future__ import annotations

from wardgate.limits.route import RouteLimiter

__all__ = ["RouteLimiter"]
