"""What the admin API reads and does, as a narrow interface the supervisor implements."""

from __future__ import annotations

from typing import Any, Protocol

from wardgate.config.gateway import GatewayConfig
from wardgate.observe.aggregate import Aggregate


class AdminView(Protocol):
    def config(self) -> GatewayConfig: ...

    def token(self) -> bytes | None: ...

    def metrics(self) -> Aggregate:
        """Every worker's slots summed (observe/aggregate.py)."""
        ...

    def process_lines(self, openmetrics: bool) -> list[str]:
        """Exposition lines the supervisor itself owns (reloads, config hash, workers)."""
        ...

    def workers(self) -> list[dict[str, Any]]: ...

    def keysets(self) -> dict[str, list[dict[str, Any]]]:
        """provider -> each live worker's key set: {"pid", "keys": [{"kid", "alg"}],
        "fetched_at", "next_refresh_at", "failures", "last_error", "source"}."""
        ...

    def upstream_states(self) -> dict[str, list[dict[str, Any]]]:
        """upstream -> each live worker's view: {"pid", "breaker": {...}, "targets": [{"url",
        "up", "state", "active", "ejections", "failures", "ejected_for_s", "share", ...}]}."""
        ...

    def denials(self, limit: int) -> dict[str, Any]:
        """The newest refusals over every worker's ring (observe/denials.py) and the clients
        refused most often: {"denials": [...], "top_clients": [{"client", "count"}]}."""
        ...

    def detections(self, limit: int) -> list[dict[str, Any]]:
        """The newest detection verdicts over every worker's ring (observe/detections.py):
        [{"time", "kind", "score", "action", "dry_run", "route", "sub", "jti", "client",
        "key", "features", "reason"}], newest first."""
        ...

    def request_reload(self) -> int:
        """Ask for a reload (the supervisor's loop does it); the reload's sequence number."""
        ...

    def reload_result(self, seq: int) -> dict[str, Any] | None: ...
