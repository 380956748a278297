"""A real issuer, real upstream and real gateways (`wardgate run`) for the DPoP tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.issuer.support import IssuerProcess, base_config
from tests.support.dpop import DpopKey
from tests.support.redis import RedisServer
from tests.support.upstream import Upstream


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IssuerProcess]:
    workdir = tmp_path_factory.mktemp("dpop-issuer")
    proc = IssuerProcess(base_config(workdir, keys={"algorithm": "ES256"}), workdir)
    proc.add_user("alice", "correct horse", ["reader"])
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = Upstream("orders").start()
    yield up
    up.stop()


def gateway_config(issuer: IssuerProcess, upstream: Upstream, **top: Any) -> dict[str, Any]:
    route = {"upstream": "orders", "claims_to_headers": {"sub": "X-User-Id"}}
    cfg: dict[str, Any] = {
        "providers": [{"name": "main", "issuer": issuer.url, "audiences": ["api"],
                       "jwks_uri": issuer.url + "/.well-known/jwks.json"}],
        "upstreams": [{"name": "orders", "targets": [upstream.url]}],
        "routes": [
            {**route, "name": "dpop", "match": {"path_prefix": "/dpop"},
             "auth": {"providers": ["main"], "dpop": "required",
                      "require": {"scopes": ["orders:read"]}}},
            {**route, "name": "any", "match": {"path_prefix": "/any"},
             "auth": {"providers": ["main"]}},
        ],
    }
    cfg.update(top)
    return cfg




@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def login(issuer: IssuerProcess, key: DpopKey | None, nonce: str | None = None) -> httpx.Response:
    headers = {}
    if key is not None:
        headers["DPoP"] = key.proof("POST", issuer.url + "/login", nonce=nonce)
    with issuer.client() as http:
        return http.post("/login", json={"username": "alice", "password": "correct horse"},
                         headers=headers)
