from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.gateway import GatewayProcess
from tests.support.upstream import Upstream


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream("a").start()
    yield up
    up.stop()


@pytest.fixture
def upstream_b() -> Iterator[Upstream]:
    up = Upstream("b").start()
    yield up
    up.stop()


def plain_config(*targets: str, **route: Any) -> dict[str, Any]:
    r = {"name": "all", "match": {"path_prefix": "/"}, "upstream": "up", "auth": "none"}
    r.update(route)
    return {
        "upstreams": [{"name": "up", "targets": list(targets)}],
        "routes": [r],
    }




@pytest.fixture
def gateway(upstream: Upstream, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    return gateway_factory(plain_config(upstream.url))
