"""Zero-trust mode: the service verifies the caller's original JWT against the issuer's JWKS.

Nothing here parses JOSE: the token goes through the gateway's own machinery
(`wardgate.auth`: strict compact parsing, the provider's header/claim rules, the remote key set
with refresh and unknown-kid refetch, the verified-token cache), so a token the gateway would
refuse is refused here for the same reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from wardgate.auth.errors import KeysUnavailable, Rejected, UnknownKid
from wardgate.auth.extract import BadTokenRequest, TokenExtractor
from wardgate.auth.identity import Identity
from wardgate.auth.registry import ProviderRegistry
from wardgate.auth.verifier import TokenVerifier
from wardgate.config.auth import ProviderConfig, TokenSources
from wardgate.errors import InvalidRequest, InvalidToken, MissingToken, ServiceUnavailable

# RFC 6750 §3: generic descriptions, as the gateway gives them
_EXPIRED = "The access token expired"
_INVALID = "The access token is invalid"


class TokenAuthenticator:
    """Verifies bearer tokens of one provider. `start()` loads the key set; `stop()` releases
    the HTTP client. Both are idempotent, so lazy start on first request is safe."""

    def __init__(self, provider: ProviderConfig, *, token: TokenSources | None = None,
                 clock: Callable[[], float] = time.time, cache_size: int = 10_000) -> None:
        self.provider = provider
        self.registry = ProviderRegistry.from_config([provider], clock=clock,
                                                     cache_size=cache_size)
        sources = token or TokenSources()
        self._verifier = TokenVerifier([self.registry.verifier(provider.name)], sources.max_bytes)
        self._extract = TokenExtractor(sources)
        self._clock = clock
        self._started = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if not self._started:
                await self.registry.start()
                self._started = True

    async def stop(self) -> None:
        async with self._lock:
            if self._started:
                await self.registry.stop()
                self._started = False

    def ready(self) -> bool:
        return self._started and self.registry.ready()

    async def authenticate(self, headers: list[tuple[bytes, bytes]], query: bytes = b"") -> Identity:
        """The verified Identity; raises MissingToken / InvalidRequest / InvalidToken / 503."""
        if not self._started:
            await self.start()
        try:
            token = self._extract.extract(headers, query)
        except BadTokenRequest:
            raise InvalidRequest("The request carries malformed or conflicting credentials")
        if token is None:
            raise MissingToken("Authentication required")  # RFC 6750 §3.1: no error code
        cached = self.registry.cache.get(token, self._clock())
        if cached is not None:
            return self._unbound(cached)
        try:
            # b64token syntax (RFC 6750 §2.1), checked on a cache miss as the gateway does
            self._extract.check_syntax(token)
        except BadTokenRequest:
            raise InvalidRequest("The request carries malformed or conflicting credentials")
        try:
            try:
                ident = self._verifier.verify(token)
            except UnknownKid:
                # A key rotated in since the last fetch: refetch once (single-flight, with the
                # provider's cooldown, so forged kids cannot make us hammer the issuer).
                await self.registry.refetch_for_kid(self.provider.name)
                try:
                    ident = self._verifier.verify(token)
                except UnknownKid:
                    if not self.registry.reachable(self.provider.name):
                        raise KeysUnavailable(self.provider.name) from None  # 503, not 401
                    raise
        except Rejected as exc:
            # the reason code stays inside (the gateway logs it; a client learns nothing more)
            raise InvalidToken(_EXPIRED if exc.reason == "expired" else _INVALID)
        except KeysUnavailable:
            raise ServiceUnavailable("Token signing keys are unavailable", code="keys_unavailable",
                                     retry_after_s=5)
        self.registry.cache.put(token, ident)
        return self._unbound(ident)

    @staticmethod
    def _unbound(ident: Identity) -> Identity:
        # RFC 9449 §7.2: a DPoP-bound token is never accepted as a bearer token; this mode
        # checks no proofs, so it takes none (the gateway does, see wardgate.dpop)
        if ident.jkt is not None:
            raise InvalidToken(_INVALID)
        return ident
