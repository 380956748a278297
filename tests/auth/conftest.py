"""Keys are generated once per session: RSA generation is the slowest thing in the suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .helpers import Env, make_env, provider_config, public_jwk


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="session")
def rsa_other() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def ec384_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="session")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def jwks(rsa_key: Any, ec_key: Any, ed_key: Any) -> dict[str, Any]:
    return {"keys": [public_jwk(rsa_key, "RS256", "rsa1"), public_jwk(ec_key, "ES256", "ec1"),
                     public_jwk(ed_key, "EdDSA", "ed1")]}


@pytest.fixture
async def env(tmp_path: Path, jwks: dict[str, Any]) -> AsyncIterator[Env]:
    e = await make_env([provider_config(tmp_path, jwks)])
    yield e
    await e.registry.stop()
