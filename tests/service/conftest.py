from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.service.support import JwksServer, SigningKey


@pytest.fixture(scope="session")
def key() -> SigningKey:
    return SigningKey("k1")


@pytest.fixture(scope="session")
def other_key() -> SigningKey:
    return SigningKey("k2")


@pytest.fixture
def jwks(key: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer().start()
    server.keys = [key.jwk]
    yield server
    server.stop()
