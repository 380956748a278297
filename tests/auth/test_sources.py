"""Remote key sets against a real HTTP server on 127.0.0.1: rotation, unknown-kid floods,
outages, conditional requests, discovery, start-up failure modes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from wardgate.auth import KeyLoadError, ProviderRegistry
from wardgate.auth.sources import RemoteSource
from wardgate.config.auth import ProviderConfig
from wardgate.errors import InvalidToken, ServiceUnavailable

from .helpers import ISS, NOW, Clock, Env, claims, public_jwk, request, sign
from .jwks_server import JwksServer


@pytest.fixture
async def server() -> AsyncIterator[JwksServer]:
    s = JwksServer()
    await s.start()
    yield s
    await s.stop()


def remote_config(server: JwksServer, **refresh: Any) -> ProviderConfig:
    return ProviderConfig.model_validate({
        "name": "main", "issuer": ISS, "audiences": ["api"], "algorithms": ["RS256", "ES256"],
        "jwks_uri": server.base + "/jwks.json",
        "refresh": {"retry_s": 0.2, "timeout_s": 2, **refresh}})


async def started(cfg: ProviderConfig, clock: Any = None) -> Env:
    clock = clock or Clock()
    reg = ProviderRegistry.from_config([cfg], clock=clock)
    await reg.start()
    return Env(reg, clock)


def at(key: Any, kid: str, **over: Any) -> bytes:
    alg = "ES256" if kid.startswith("ec") else "RS256"
    return sign({"alg": alg, "kid": kid, "typ": "at+jwt"}, claims(**over), key)


def source(env: Env) -> RemoteSource:
    s = env.registry.sources["main"]
    assert isinstance(s, RemoteSource)
    return s


async def test_startup_fetch_then_ready(server: JwksServer, rsa_key: Any) -> None:
    server.docs["/jwks.json"] = {"keys": [public_jwk(rsa_key, "RS256", "k1")]}
    env = await started(remote_config(server))
    try:
        assert env.registry.ready()
        await env.route({"providers": ["main"]}).authenticate(request(token=at(rsa_key, "k1")))
        assert env.registry.counters["main.ok"] == 1
    finally:
        await env.registry.stop()


async def test_key_rotation_new_kid_accepted_on_first_request(server: JwksServer, rsa_key: Any,
                                                              ec_key: Any) -> None:
    server.docs["/jwks.json"] = {"keys": [public_jwk(rsa_key, "RS256", "k1")]}
    env = await started(remote_config(server))
    try:
        route = env.route({"providers": ["main"]})
        # the issuer rotates: publishes ec2 and starts signing with it at once
        server.docs["/jwks.json"] = {"keys": [public_jwk(rsa_key, "RS256", "k1"),
                                              public_jwk(ec_key, "ES256", "ec2")]}
        req = request(token=at(ec_key, "ec2"))
        await route.authenticate(req)
        assert req.auth_outcome == "ok"
        assert server.hits["/jwks.json"] == 2
        assert env.registry.counters["main.kid_refetch"] == 1
        await route.authenticate(request(token=at(rsa_key, "k1")))  # old key still served
    finally:
        await env.registry.stop()


async def test_unknown_kid_flood_fetches_at_most_once_per_cooldown(server: JwksServer,
                                                                   rsa_key: Any) -> None:
    server.docs["/jwks.json"] = {"keys": [public_jwk(rsa_key, "RS256", "k1")]}
    server.delay_s = 0.05  # keep the refetch in flight while the flood arrives
    env = await started(remote_config(server, unknown_kid_cooldown_s=30))
    try:
        route = env.route({"providers": ["main"]})

        async def attempt() -> str:
            req = request(token=at(rsa_key, "r" + uuid.uuid4().hex))
            with pytest.raises(InvalidToken):
                await route.authenticate(req)
            return req.auth_outcome

        outcomes = await asyncio.gather(*(attempt() for _ in range(60)))
        assert set(outcomes) == {"unknown_kid"}
        assert server.hits["/jwks.json"] == 2  # start-up + one refetch
        await asyncio.gather(*(attempt() for _ in range(30)))
        assert server.hits["/jwks.json"] == 2  # still inside the cooldown
        env.clock.now += 31
        await asyncio.gather(*(attempt() for _ in range(30)))
        assert server.hits["/jwks.json"] == 3
        assert env.registry.counters["main.kid_refetch_suppressed"] > 0
    finally:
        await env.registry.stop()


async def test_expired_token_with_unknown_kid_causes_no_fetch(server: JwksServer,
                                                              rsa_key: Any) -> None:
    server.docs["/jwks.json"] = {"keys": [public_jwk(rsa_key, "RS256", "k1")]}
    env = await started(remote_config(server))
    try:
        with pytest.raises(InvalidToken):
            await env.route({"providers": ["main"]}).authenticate(
                request(token=at(rsa_key, "new", exp=int(NOW) - 100)))
        assert server.hits["/jwks.json"] == 1
    finally:
        await env.registry.stop()


async def test_jwks_down_cached_keys_keep_working(server: JwksServer, rsa_key: Any) -> None:
    server.docs["/jwks.json"] = {"keys": [public_jwk(rsa_key, "RS256", "k1")]}
    env = await started(remote_config(server, max_stale_s=3600))
    try:
        route = env.route({"providers": ["main"]})
        cached = at(rsa_key, "k1")
        await route.authenticate(request(token=cached))
        await server.stop()                      # the issuer goes away entirely
        assert await source(env).refresh() is False
        assert env.registry.counters["main.error"] == 1
        await route.authenticate(request(token=cached))
        await route.authenticate(request(token=at(rsa_key, "k1", sub="new")))  # full verify
        assert env.registry.ready()
        # beyond max_stale_s the last good keys are dropped: 503, cached tokens included
        env.clock.now += 3601
        assert await source(env).refresh() is False
        assert not env.registry.ready()
        for t in (cached, at(rsa_key, "k1", sub="x", exp=int(env.clock.now) + 60,
                             iat=int(env.clock.now))):
            with pytest.raises(ServiceUnavailable):
                await route.authenticate(request(token=t))
    finally:
        await env.registry.stop()


async def test_jwks_http_error_keeps_keys(server: JwksServer, rsa_key: Any) -> None:
    server.docs["/jwks.json"] = {"keys": [public_jwk(rsa_key, "RS256", "k1")]}
    env = await started(remote_config(server))
    try:
        for status, doc in ((500, None), (200, {"keys": []}), (200, {"nope": 1})):
            server.fail_status = status if status != 200 else None
            if doc is not None:
                server.docs["/jwks.json"] = doc
            assert await source(env).refresh() is False
            env.verify(at(rsa_key, "k1", sub=f"s{status}"))
    finally:
        await env.registry.stop()


async def test_conditional_refresh_304(server: JwksServer, rsa_key: Any) -> None:
    server.docs["/jwks.json"] = {"keys": [public_jwk(rsa_key, "RS256", "k1")]}
    server.headers["Cache-Control"] = "public, max-age=120"
    env = await started(remote_config(server))
    try:
        sched = source(env).schedule
        assert sched.next_at == NOW + 120           # the issuer's max-age, within bounds
        server.headers["Cache-Control"] = "max-age=200"
        assert await source(env).refresh() is True
        assert server.conditional == 1 and env.registry.counters["main.not_modified"] == 1
        assert sched.next_at == NOW + 200           # a 304's Cache-Control counts too
        server.headers["Cache-Control"] = "max-age=5"
        server.docs["/jwks.json"] = {"keys": [public_jwk(rsa_key, "RS256", "k2")]}
        assert await source(env).refresh() is True
        assert sched.next_at == NOW + 60            # clamped up to min_interval_s
    finally:
        await env.registry.stop()


async def test_key_removed_from_set_ends_cached_tokens(server: JwksServer, rsa_key: Any,
                                                       rsa_other: Any) -> None:
    server.docs["/jwks.json"] = {"keys": [public_jwk(rsa_key, "RS256", "k1"),
                                          public_jwk(rsa_other, "RS256", "k2")]}
    env = await started(remote_config(server))
    try:
        route = env.route({"providers": ["main"]})
        t1, t2 = at(rsa_key, "k1"), at(rsa_other, "k2")
        for _ in range(2):  # a token is cached on its second verification (the doorkeeper)
            await route.authenticate(request(token=t1))
            await route.authenticate(request(token=t2))
        server.docs["/jwks.json"] = {"keys": [public_jwk(rsa_other, "RS256", "k2")]}
        await source(env).refresh()
        hits = env.registry.cache.hits
        await route.authenticate(request(token=t2))
        assert env.registry.cache.hits == hits + 1  # unchanged key: its entries live on
        with pytest.raises(InvalidToken):
            await route.authenticate(request(token=t1))
    finally:
        await env.registry.stop()


async def test_oversize_or_weak_key_sets_refused(server: JwksServer, rsa_key: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = rsa.generate_private_key(65537, 1024)
    server.docs["/jwks.json"] = {"keys": [public_jwk(weak, "RS256", "weak")]}
    env = await started(remote_config(server))
    try:
        assert not env.registry.ready()
    finally:
        await env.registry.stop()
    server.docs["/jwks.json"] = {"keys": [public_jwk(rsa_key, "RS256", f"k{i}") for i in range(4)]}
    env = await started(remote_config(server, max_bytes=1024))
    try:
        assert not env.registry.ready() and env.registry.counters["main.error"] == 1
    finally:
        await env.registry.stop()


async def test_start_failure_exit_raises(server: JwksServer) -> None:
    reg = ProviderRegistry.from_config([remote_config(server, on_start_failure="exit")],
                                       clock=Clock())
    with pytest.raises(KeyLoadError):
        await reg.start()


async def test_start_failure_degraded_then_background_recovery(server: JwksServer,
                                                               rsa_key: Any) -> None:
    # real clock here: the background loop's retry timing is what is under test
    reg = ProviderRegistry.from_config([remote_config(server)])
    await reg.start()
    env = Env(reg, Clock())
    try:
        assert not reg.ready()
        now = int(time.time())
        token = at(rsa_key, "k1", iat=now, exp=now + 300)
        with pytest.raises(ServiceUnavailable):
            await env.route({"providers": ["main"]}).authenticate(request(token=token))
        server.docs["/jwks.json"] = {"keys": [public_jwk(rsa_key, "RS256", "k1")]}
        for _ in range(100):
            if reg.ready():
                break
            await asyncio.sleep(0.05)
        assert reg.ready()
        await env.route({"providers": ["main"]}).authenticate(request(token=token))
    finally:
        await reg.stop()


async def test_discovery(server: JwksServer, rsa_key: Any) -> None:
    server.docs["/.well-known/openid-configuration"] = {
        "issuer": server.base, "jwks_uri": server.base + "/keys"}
    server.docs["/keys"] = {"keys": [public_jwk(rsa_key, "RS256", "k1")]}
    cfg = ProviderConfig.model_validate({"name": "main", "issuer": server.base,
                                         "audiences": ["api"], "discovery": True})
    env = await started(cfg)
    try:
        assert env.registry.ready()
        env.verify(sign({"alg": "RS256", "kid": "k1", "typ": "at+jwt"},
                        claims(iss=server.base), rsa_key))
    finally:
        await env.registry.stop()
    # OIDC Discovery §4.3: metadata naming another issuer is not trusted
    server.docs["/.well-known/openid-configuration"]["issuer"] = "https://evil.example"
    env = await started(cfg)
    try:
        assert not env.registry.ready()
        assert "/keys" not in server.hits or server.hits["/keys"] == 1
    finally:
        await env.registry.stop()


def test_remote_urls_must_be_https_unless_loopback() -> None:
    from pydantic import ValidationError

    base = {"name": "m", "issuer": ISS, "audiences": ["api"]}
    with pytest.raises(ValidationError, match="loopback"):
        ProviderConfig.model_validate(dict(base, jwks_uri="http://issuer.example/jwks"))
    ProviderConfig.model_validate(dict(base, jwks_uri="https://issuer.example/jwks"))
    ProviderConfig.model_validate(dict(base, jwks_uri="http://127.0.0.1:9000/jwks"))
    ProviderConfig.model_validate(dict(base, jwks_uri="http://issuer.example/jwks",
                                       allow_insecure_http=True))
