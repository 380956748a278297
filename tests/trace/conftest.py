from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.upstream import Upstream
from tests.trace.receiver import Receiver


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream("a").start()
    yield up
    up.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def traced_config(target: str, tracing: dict[str, Any] | None, **top: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "upstreams": [{"name": "up", "targets": [target]}],
        "routes": [{"name": "all", "match": {"path_prefix": "/"}, "upstream": "up",
                    "auth": "none"}],
        **top,
    }
    if tracing is not None:
        cfg["tracing"] = tracing
    return cfg


