"""ProviderRegistry: every trusted issuer of one gateway worker, for one config generation.

Owns the key rings, their sources (and the HTTP client of remote ones), the shared
verified-token cache, the fetch counters and the revocation hook. `start`/`stop` are the only
places resources are created and released.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from wardgate.auth.cache import TokenCache
from wardgate.auth.identity import Identity
from wardgate.auth.keys import KeyRing
from wardgate.auth.sources import KeySource, RemoteSource, StaticSource
from wardgate.auth.verifier import ProviderVerifier
from wardgate.config.auth import DpopConfig, ProviderConfig

#: Return True when a verified token has been revoked (checked on every request, cache hits
#: included; keep it a set lookup by jti, or sub plus iat, never by the token string).
RevocationCheck = Callable[[Identity], bool]


class ProviderRegistry:
    def __init__(self, verifiers: dict[str, ProviderVerifier], sources: dict[str, KeySource],
                 clock: Callable[[], float], cache_size: int = 10_000) -> None:
        self.verifiers = verifiers
        self.sources = sources
        self.clock = clock
        self.cache = TokenCache(cache_size)
        self.counters: dict[str, int] = {}
        self.revocation: RevocationCheck | None = None
        #: the feed's freshness (wardgate.revoke.health.FeedHealth: `.fresh`), when fed
        self.revocation_health: Any = None
        #: routes' on_feed_error when they do not say (the gateway's revocation section)
        self.on_feed_error = "allow"
        #: the worker's DPoP state (wardgate.dpop.step.DpopContext), set by enable_dpop
        self.dpop: Any = None

    @classmethod
    def from_config(cls, providers: list[ProviderConfig], *, clock: Callable[[], float] = time.time,
                    cache_size: int = 10_000) -> ProviderRegistry:
        verifiers: dict[str, ProviderVerifier] = {}
        sources: dict[str, KeySource] = {}
        self = cls(verifiers, sources, clock, cache_size)
        for cfg in providers:
            ring = KeyRing()
            verifier = ProviderVerifier(cfg, ring, clock)
            source: KeySource
            if cfg.jwks_uri is not None or cfg.discovery:
                source = RemoteSource(cfg, ring, self.counters, clock)
            else:
                source = StaticSource(cfg, ring, self.counters)
            verifier.usable = source.ready
            verifiers[cfg.name] = verifier
            sources[cfg.name] = source
        return self

    async def start(self) -> None:
        """Load every provider's keys. Raises KeyLoadError for local key material that cannot be
        loaded, and for a remote key set down at start when `on_start_failure: exit`."""
        try:
            await asyncio.gather(*(s.start() for s in self.sources.values()))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.sources.values()), return_exceptions=True)

    def ready(self) -> bool:
        return all(s.ready() for s in self.sources.values())

    def verifier(self, name: str) -> ProviderVerifier:
        return self.verifiers[name]

    async def refetch_for_kid(self, provider: str) -> None:
        await self.sources[provider].refetch_for_kid()

    def reachable(self, provider: str) -> bool:
        return self.sources[provider].reachable()

    def status(self) -> dict[str, dict[str, Any]]:
        """Each provider's key set (observe/keysets.py writes it for the admin API)."""
        return {name: s.status() for name, s in self.sources.items()}

    def enable_dpop(self, cfg: DpopConfig, trusted: Any, state: Any = None) -> None:
        """Check DPoP proofs (RFC 9449) for the routes compiled after this call. `trusted`:
        the proxies whose Forwarded fields name the client's scheme and host; `state`: the
        Redis client that shares the replay cache, None for this worker's alone."""
        from wardgate.dpop.step import DpopContext

        self.dpop = DpopContext(cfg, trusted, self.clock, state)

    def set_revocation_check(self, check: RevocationCheck | None) -> None:
        self.revocation = check
