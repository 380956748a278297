"""A proof is accepted once across workers: two workers share the replay state through a real
Redis (state.redis_url); without Redis each worker remembers only its own proofs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.issuer.support import IssuerProcess
from tests.support.dpop import DpopKey
from tests.support.gateway import GatewayProcess
from tests.support.redis import RedisServer
from tests.support.upstream import Upstream

from .conftest import gateway_config, login

REPLAYS = 24  # fresh connections: with two workers, all on one has odds 2**-23


def _replay_statuses(gw: GatewayProcess, at: str, proof: str) -> tuple[int, list[int], int]:
    """The first use, then the same proof on new connections; and how many workers served."""
    url = f"http://127.0.0.1:{gw.port}/dpop/orders/1"
    headers = {"Authorization": f"DPoP {at}", "DPoP": proof}
    first = httpx.get(url, headers=headers).status_code
    again = []
    for _ in range(REPLAYS):
        with httpx.Client() as http:  # a new connection each time: any worker may take it
            again.append(http.get(url, headers={**headers, "X-Request-Id": uuid.uuid4().hex})
                         .status_code)
    return first, again, len(gw.worker_pids())


@pytest.fixture(scope="module")
def bound(issuer: IssuerProcess) -> tuple[DpopKey, str]:
    key = DpopKey("ES256")
    return key, login(issuer, key).json()["access_token"]


def test_replay_refused_across_two_workers_with_redis(
        issuer: IssuerProcess, upstream: Upstream, redis: RedisServer,
        gateway_factory: Callable[..., GatewayProcess], bound: tuple[DpopKey, str]) -> None:
    key, at = bound
    cfg: dict[str, Any] = gateway_config(issuer, upstream, workers=2,
                                         state={"redis_url": redis.url, "timeout_ms": 500})
    gw = gateway_factory(cfg)
    gw.wait_event("state_store_available", count=2)
    url = f"http://127.0.0.1:{gw.port}/dpop/orders/1"
    first, again, workers = _replay_statuses(gw, at, key.proof("GET", url, token=at))
    assert workers == 2
    assert first == 200
    assert again == [401] * REPLAYS
    assert b"wg:dpop:{" in redis.command("KEYS", "wg:dpop:*")
    # fresh proofs still pass on every worker
    for _ in range(6):
        with httpx.Client() as http:
            r = http.get(url, headers={"Authorization": f"DPoP {at}",
                                       "DPoP": key.proof("GET", url, token=at)})
            assert r.status_code == 200


def test_without_redis_each_worker_has_its_own_cache(
        issuer: IssuerProcess, upstream: Upstream,
        gateway_factory: Callable[..., GatewayProcess], bound: tuple[DpopKey, str]) -> None:
    """The control for the test above: the same requests, no Redis, and the replay gets
    through on the other worker (why check-config warns about this setup)."""
    key, at = bound
    gw = gateway_factory(gateway_config(issuer, upstream, workers=2))
    url = f"http://127.0.0.1:{gw.port}/dpop/orders/1"
    first, again, workers = _replay_statuses(gw, at, key.proof("GET", url, token=at))
    assert workers == 2 and first == 200
    assert 200 in again and 401 in again
    assert again.count(200) == 1  # once on the other worker, then it remembers too


def test_store_error_policy_deny(issuer: IssuerProcess, upstream: Upstream, redis: RedisServer,
                                 gateway_factory: Callable[..., GatewayProcess],
                                 bound: tuple[DpopKey, str]) -> None:
    key, at = bound
    cfg = gateway_config(issuer, upstream, state={"redis_url": redis.url},
                         dpop={"on_store_error": "deny"})
    gw = gateway_factory(cfg)
    gw.wait_event("state_store_available")
    url = f"http://127.0.0.1:{gw.port}/dpop/orders/1"
    ok = httpx.get(url, headers={"Authorization": f"DPoP {at}",
                                 "DPoP": key.proof("GET", url, token=at)})
    assert ok.status_code == 200
    redis.stop()
    gw.wait_event("state_store_unavailable")
    r = httpx.get(url, headers={"Authorization": f"DPoP {at}",
                                "DPoP": key.proof("GET", url, token=at)})
    assert r.status_code == 503 and r.json()["code"] == "dpop_store_error"
