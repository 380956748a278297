"""Where a provider's keys come from: local material (jwks_file, inline PEM, HMAC secret) or a
remote key set (jwks_uri, or OIDC discovery). The only I/O in the auth layer, off the hot path.

Keys never come from a token: `jku`, `x5u`, `jwk`, `x5c` are refused by the verifier, and the
only URLs fetched here are the ones in the configuration (or in the configured issuer's own
discovery document).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from wardgate.auth.jwks import RefreshSchedule
from wardgate.auth.keys import (
    KeyRing,
    VerificationKey,
    import_jwks,
    key_from_pem,
    key_from_secret,
)
from wardgate.config.auth import ProviderConfig, _url_ok

if TYPE_CHECKING:
    # imported where a remote key set is fetched: httpx and what it pulls in (anyio, h11, idna,
    # certifi, its CLI's click) cost a worker ~7.5 MB of RSS that static keys never use
    import httpx

log = logging.getLogger("wardgate.auth")
Clock = Callable[[], float]


class KeyLoadError(RuntimeError):
    """Keys could not be loaded and the configuration says not to start without them."""


class _FetchError(Exception):
    pass


class KeySource(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def ready(self) -> bool: ...
    async def refetch_for_kid(self) -> None: ...
    def reachable(self) -> bool: ...
    def status(self) -> dict[str, Any]: ...


class StaticSource:
    """jwks_file, keys (inline PEM) or secret_env/secret_file, loaded once per config generation."""

    def __init__(self, cfg: ProviderConfig, ring: KeyRing, counters: dict[str, int]) -> None:
        self.cfg = cfg
        self.ring = ring
        self.counters = counters
        self.loaded_at: float | None = None

    def status(self) -> dict[str, Any]:
        """For the admin API: the keys (kid, alg) and when they were loaded (unix time)."""
        return {"source": "static", "keys": self.ring.describe(), "fetched_at": self.loaded_at,
                "next_refresh_at": None, "failures": 0, "last_error": None}

    def load(self) -> None:
        cfg = self.cfg
        keys: list[VerificationKey] = []
        try:
            secret = cfg.secret_bytes()
            if secret is not None:
                keys.append(key_from_secret(secret, cfg.algorithms[0]))
            for k in cfg.keys:
                keys.append(key_from_pem(k.pem_bytes(), k.alg, k.kid, cfg.algorithms,
                                         cfg.min_rsa_bits))
            if cfg.jwks_file is not None:
                doc = json.loads(Path(cfg.jwks_file).read_bytes())
                found, problems = import_jwks(doc, cfg.algorithms, cfg.min_rsa_bits)
                for p in problems:
                    log.warning("provider %s: %s: skipped %s", cfg.name, cfg.jwks_file, p)
                keys.extend(found)
        except (OSError, ValueError) as exc:  # KeyImportError and JSON errors are ValueErrors
            raise KeyLoadError(f"provider {cfg.name}: {exc}") from None
        if not keys:
            raise KeyLoadError(f"provider {cfg.name}: no usable keys")
        self.ring.replace(keys)
        self.loaded_at = time.time()
        self.counters[f"{cfg.name}.load_ok"] = self.counters.get(f"{cfg.name}.load_ok", 0) + 1

    async def start(self) -> None:
        self.load()

    async def stop(self) -> None:
        return None

    def ready(self) -> bool:
        return len(self.ring) > 0

    async def refetch_for_kid(self) -> None:
        return None  # local keys change only with a new configuration

    def reachable(self) -> bool:
        return True


class RemoteSource:
    """A JWKS over HTTP: fetched at start, refreshed in the background, refetched (single-flight,
    with a cooldown) when a token names an unknown kid, last good keys kept up to max_stale_s."""

    def __init__(self, cfg: ProviderConfig, ring: KeyRing, counters: dict[str, int], clock: Clock,
                 client_factory: Callable[[], httpx.AsyncClient] | None = None) -> None:
        self.cfg = cfg
        self.ring = ring
        self.counters = counters
        self.clock = clock
        self.schedule = RefreshSchedule(cfg.refresh)
        self._jwks_uri = cfg.jwks_uri
        self._client_factory = client_factory or self._default_client
        self._client: httpx.AsyncClient | None = None
        self._inflight: asyncio.Task[bool] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    def status(self) -> dict[str, Any]:
        """For the admin API (times are this source's clock: unix time in the gateway)."""
        sched = self.schedule
        return {"source": "remote", "keys": self.ring.describe(),
                "fetched_at": sched.last_success, "next_refresh_at": sched.next_at,
                "failures": sched.failures, "last_error": self.last_error}

    def _default_client(self) -> httpx.AsyncClient:
        import httpx

        # no redirects (a redirect could lead anywhere), no proxies from the environment
        return httpx.AsyncClient(timeout=self.cfg.refresh.timeout_s, follow_redirects=False,
                                 trust_env=False)

    def _count(self, outcome: str) -> None:
        key = f"{self.cfg.name}.{outcome}"
        self.counters[key] = self.counters.get(key, 0) + 1

    async def start(self) -> None:
        self._client = self._client_factory()
        ok = await self.refresh()
        if not ok and self.cfg.refresh.on_start_failure == "exit":
            await self.stop()
            raise KeyLoadError(f"provider {self.cfg.name}: key set could not be fetched")
        self._loop_task = asyncio.create_task(self._loop(), name=f"jwks-{self.cfg.name}")

    async def stop(self) -> None:
        for task in (self._loop_task, self._inflight):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._loop_task = self._inflight = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def ready(self) -> bool:
        return len(self.ring) > 0 and not self.schedule.stale(self.clock())

    async def _loop(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the refresher must outlive any surprise
                self._count("error")
                log.exception("provider %s: key refresh loop error: %s", self.cfg.name, exc)
                await asyncio.sleep(self.cfg.refresh.retry_s)

    async def _tick(self) -> None:
        now = self.clock()
        if len(self.ring) and self.schedule.stale(now):
            self.ring.kill_all()  # also ends cache entries of tokens these keys verified
            self._count("stale_dropped")
            log.error("provider %s: keys older than max_stale_s dropped", self.cfg.name)
        delay = self.schedule.next_at - now
        if delay > 0:
            await asyncio.sleep(min(delay, 60.0))
            return
        await self.refresh()

    async def refresh(self) -> bool:
        """Fetch now, joining a fetch already in flight (single-flight)."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._fetch())
        return await asyncio.shield(self._inflight)

    def reachable(self) -> bool:
        """False while the last fetch failed: an unknown kid cannot be ruled out then."""
        return self.last_error is None

    async def refetch_for_kid(self) -> None:
        if self._inflight is not None and not self._inflight.done():
            await asyncio.shield(self._inflight)
            return
        now = self.clock()
        if not self.schedule.kid_fetch_allowed(now):
            self._count("kid_refetch_suppressed")
            return
        self.schedule.note_kid_fetch(now)
        self._count("kid_refetch")
        await self.refresh()

    async def _get(self, url: str, etag: str | None = None) -> tuple[httpx.Headers, bytes | None]:
        """GET with a body cap: (headers, body), body None on 304 Not Modified."""
        assert self._client is not None
        headers = {"Accept": "application/jwk-set+json, application/json"}
        if etag:
            headers["If-None-Match"] = etag
        async with self._client.stream("GET", url, headers=headers) as resp:
            if resp.status_code == 304:
                return resp.headers, None
            if resp.status_code != 200:
                raise _FetchError(f"HTTP {resp.status_code}")
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > self.cfg.refresh.max_bytes:
                    raise _FetchError("response larger than refresh.max_bytes")
            return resp.headers, bytes(body)

    async def _discover(self) -> str:
        """OpenID Connect Discovery 1.0 §4: jwks_uri from the issuer's own metadata."""
        url = self.cfg.issuer.rstrip("/") + "/.well-known/openid-configuration"
        _, body = await self._get(url)
        if body is None:
            raise _FetchError("unexpected 304")
        doc = json.loads(body)
        if not isinstance(doc, dict) or doc.get("issuer") != self.cfg.issuer:
            # §4.3: the metadata's issuer must be exactly the issuer we asked
            raise _FetchError("discovery document issuer does not match")
        uri = doc.get("jwks_uri")
        if not isinstance(uri, str):
            raise _FetchError("discovery document has no jwks_uri")
        return _url_ok(uri, self.cfg.allow_insecure_http)

    async def _fetch(self) -> bool:
        import httpx

        name = self.cfg.name
        try:
            if self._jwks_uri is None:
                self._jwks_uri = await self._discover()
            etag = self.schedule.etag if len(self.ring) else None
            headers, body = await self._get(self._jwks_uri, etag)
            now = self.clock()
            if body is None:
                self.schedule.on_not_modified(now, headers.get("cache-control"))
                self._count("not_modified")
                log.debug("provider %s: key set not modified", name)
                return True
            keys, problems = import_jwks(json.loads(body), self.cfg.algorithms,
                                         self.cfg.min_rsa_bits)
            for p in problems:
                log.warning("provider %s: skipped %s", name, p)
            if not keys:
                raise _FetchError("no usable keys in the key set")
            added, removed = self.ring.replace(keys)
            self.schedule.on_success(now, headers.get("cache-control"), headers.get("etag"))
            self._count("ok")
            self.last_error = None
            log.info("provider %s: key set loaded (%d keys, %d new, %d removed)",
                     name, len(keys), added, removed)
            return True
        except (httpx.HTTPError, _FetchError, ValueError, OSError) as exc:
            now = self.clock()
            delay = self.schedule.on_failure(now)
            self._count("error")
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            if self.cfg.discovery:
                self._jwks_uri = None  # the issuer may have moved its keys: ask it again
            log.warning("provider %s: key set fetch failed (%s: %s); retry in %.0fs",
                        name, type(exc).__name__, exc, delay)
            if self.schedule.stale(now) and len(self.ring):
                self.ring.kill_all()
                self._count("stale_dropped")
                log.error("provider %s: keys older than max_stale_s dropped", name)
            return False
