"""Fixtures: a fresh issuer with a revocation feed, an upstream, gateways, Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.issuer.support import IssuerProcess
from tests.revoke.support import make_issuer
from tests.support.gateway import GatewayProcess
from tests.support.redis import RedisServer
from tests.support.upstream import Upstream


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream("orders").start()
    yield up
    up.stop()


@pytest.fixture
def issuer_factory(tmp_path: Path) -> Iterator[Callable[..., IssuerProcess]]:
    made: list[IssuerProcess] = []

    def make(redis_url: str | None = None, start: bool = True, **kw: Any) -> IssuerProcess:
        proc = make_issuer(tmp_path / f"issuer{len(made)}", redis_url, **kw)
        made.append(proc)
        return proc.start() if start else proc

    yield make
    for p in made:
        p.stop()


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def make(config: dict[str, Any], start: bool = True) -> GatewayProcess:
        gw = GatewayProcess(config, tmp_path / "gw")
        started.append(gw)
        return gw.start() if start else gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    r = RedisServer(tmp_path).start()
    yield r
    r.stop()
