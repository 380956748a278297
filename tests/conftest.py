"""Fixtures every test folder uses: real gateway processes, stopped at the end of the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import GatewayProcess


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """`make(config, start=True)`: a `wardgate run` process on `config`, stopped by PID later."""
    started: list[GatewayProcess] = []

    def make(config: dict[str, Any], start: bool = True) -> GatewayProcess:
        gw = GatewayProcess(config, tmp_path)
        started.append(gw)
        return gw.start() if start else gw

    yield make
    for gw in started:
        gw.stop()
