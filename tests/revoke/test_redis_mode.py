"""Redis mode: the issuer relays its events to a stream on a real redis-server; two gateway
instances of two workers each read it. Also: a gateway started later catches up from the
stream, and a Redis that restarts empty is refilled by the relay and re-read by the workers."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.issuer.support import IssuerProcess
from tests.revoke.support import KeepAlive, gateway_config, login, status
from tests.support.gateway import GatewayProcess
from tests.support.redis import RedisServer
from tests.support.upstream import Upstream

CONNECTIONS = 8  # per gateway: SO_REUSEPORT spreads them over both workers


def _revoke(iss: IssuerProcess, token: str) -> None:
    with iss.client() as http:
        r = http.post("/revoke", data={"token": token, "client_id": "wardgate-login"})
        assert r.status_code == 200


def _all_refuse(conns: list[KeepAlive], token: str, timeout: float = 2.0) -> float:
    start = time.monotonic()
    pending = list(conns)
    while pending:
        pending = [c for c in pending if c.get(token) != 401]
        if pending and time.monotonic() - start > timeout:
            raise AssertionError(f"{len(pending)} connections still accept after {timeout}s")
        if pending:
            time.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture
def redis_stack(issuer_factory: Callable[..., IssuerProcess], upstream: Upstream,
                gateways: Callable[..., GatewayProcess], redis_server: RedisServer
                ) -> tuple[IssuerProcess, list[GatewayProcess]]:
    iss = issuer_factory(redis_server.url)
    gws = [gateways(gateway_config(iss, upstream.url, workers=2, redis_url=redis_server.url))
           for _ in range(2)]
    return iss, gws


def test_two_gateways_two_workers_refuse_within_the_bound(
        redis_stack: tuple[IssuerProcess, list[GatewayProcess]]) -> None:
    iss, gws = redis_stack
    conns = [KeepAlive(gw.port) for gw in gws for _ in range(CONNECTIONS)]
    try:
        for _ in range(3):
            tok = login(iss)["access_token"]
            assert all(c.get(tok) == 200 for c in conns)
            _revoke(iss, tok)
            assert _all_refuse(conns, tok) < 2.0
        for gw in gws:
            assert '"source":"redis"' in gw.stderr()
    finally:
        for c in conns:
            c.close()


def test_gateway_started_later_reads_the_stream(
        redis_stack: tuple[IssuerProcess, list[GatewayProcess]], upstream: Upstream,
        gateways: Callable[..., GatewayProcess], redis_server: RedisServer) -> None:
    iss, _ = redis_stack
    tok = login(iss)["access_token"]
    _revoke(iss, tok)
    time.sleep(0.5)  # relayed
    late = gateways(gateway_config(iss, upstream.url, workers=2, redis_url=redis_server.url))
    assert status(late.port, tok) == 401
    assert status(late.port, login(iss, "bob", "battery staple")["access_token"]) == 200


def test_redis_restart(redis_stack: tuple[IssuerProcess, list[GatewayProcess]],
                       redis_server: RedisServer, tmp_path: Path) -> None:
    iss, gws = redis_stack
    before = login(iss)["access_token"]
    _revoke(iss, before)
    for gw in gws:
        deadline = time.monotonic() + 2
        while status(gw.port, before) != 401:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    # Redis dies and comes back empty (no persistence) on the same port
    redis_server.kill()
    after = login(iss)["access_token"]
    _revoke(iss, after)  # committed while Redis is down: relayed when it returns
    again = RedisServer(tmp_path / "again", port=redis_server.port).start()
    try:
        for gw in gws:
            deadline = time.monotonic() + 10
            while status(gw.port, after) != 401:
                assert time.monotonic() < deadline, "revocation made while Redis was down lost"
                time.sleep(0.05)
            assert status(gw.port, before) == 401  # what the workers held stays
        # and the stream works again for new revocations
        third = login(iss)["access_token"]
        assert status(gws[0].port, third) == 200
        _revoke(iss, third)
        for gw in gws:
            deadline = time.monotonic() + 2
            while status(gw.port, third) != 401:
                assert time.monotonic() < deadline
                time.sleep(0.02)
    finally:
        again.stop()  # by PID
