# Real upstream, real `wardgate run` processes, real Redis; tokens signed with a test key.
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.admin.support import TOKEN, TOKEN_ENV
from tests.gateway.conftest import upstream  # noqa: F401
from tests.issuer.support import IssuerProcess
from tests.revoke.support import make_issuer
from tests.support.redis import RedisServer


@pytest.fixture(autouse=True)
def _admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)  # the gateway inherits it


@pytest.fixture(scope="session")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    r = RedisServer(tmp_path).start()
    yield r
    r.stop()


@pytest.fixture
def issuer_factory(tmp_path: Path) -> Iterator[Callable[..., IssuerProcess]]:
    """`make(redis_url=None, **overrides)`: a real `wardgate issuer` with a feed token."""
    made: list[IssuerProcess] = []

    def make(redis_url: str | None = None, **kw: Any) -> IssuerProcess:
        proc = make_issuer(tmp_path / f"issuer{len(made)}", redis_url, **kw)
        made.append(proc)
        return proc.start()

    yield make
    for p in made:
        p.stop()
