"""Interop: proofs made by an independent implementation (Authlib's JOSE, not joserfc, not
our hand-built ones) are accepted by the verifier, by the real issuer and the real gateway;
the bound access token is checked with PyJWT against the issuer's JWKS."""

from __future__ import annotations

import json
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import authlib.deprecate  # noqa: F401 - installs its "always" filter first, so ours wins below
import httpx
import jwt as pyjwt
import pytest

from tests.issuer.support import IssuerProcess
from tests.support.dpop import ath
from tests.support.gateway import GatewayProcess
from tests.support.upstream import Upstream
from wardgate.dpop.proof import ProofVerifier

from .conftest import gateway_config

with warnings.catch_warnings():
    # authlib.jose (Authlib's own JOSE code, not joserfc: the point here) announces its move
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, JsonWebSignature

KEYS = {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519"), "RS256": ("RSA", 2048),
        "PS256": ("RSA", 2048)}


class AuthlibClient:
    """A DPoP client whose key, thumbprint and proofs all come from Authlib."""

    def __init__(self, alg: str) -> None:
        kty, crv = KEYS[alg]
        self.alg = alg
        self.key = JsonWebKey.generate_key(kty, crv, is_private=True)
        self.public = self.key.as_dict(is_private=False)
        self.jkt = self.key.thumbprint()
        self.jws = JsonWebSignature(algorithms=[alg])

    def proof(self, method: str, url: str, token: str | None = None,
              nonce: str | None = None) -> str:
        claims: dict[str, Any] = {"jti": uuid.uuid4().hex, "htm": method, "htu": url,
                                  "iat": int(time.time())}
        if token is not None:
            claims["ath"] = ath(token)
        if nonce is not None:
            claims["nonce"] = nonce
        header = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public}
        out = self.jws.serialize_compact(header, json.dumps(claims).encode(), self.key)
        return out.decode() if isinstance(out, bytes) else out


@pytest.mark.parametrize("alg", list(KEYS))
def test_authlib_proofs_pass_the_verifier(alg: str) -> None:
    client = AuthlibClient(alg)
    v = ProofVerifier(list(KEYS), max_age_s=60, max_future_s=5)
    url = "https://api.example/orders"
    p = v.verify(client.proof("GET", url, token="a.b.c").encode(), method="GET",
                 uri="https://api.example/orders", now=time.time(), access_token=b"a.b.c",
                 jkt=client.jkt)
    assert p.jkt == client.jkt


@pytest.fixture(scope="module")
def gateway(issuer: IssuerProcess, upstream: Upstream,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(gateway_config(issuer, upstream), tmp_path_factory.mktemp("interop-gw"))
    try:
        yield gw.start()
    finally:
        gw.stop()


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_authlib_client_end_to_end(issuer: IssuerProcess, gateway: GatewayProcess,
                                   upstream: Upstream, alg: str) -> None:
    client = AuthlibClient(alg)
    with issuer.client() as http:
        r = http.post("/login", json={"username": "alice", "password": "correct horse"},
                      headers={"DPoP": client.proof("POST", issuer.url + "/login")})
    assert r.status_code == 200, r.text
    at = r.json()["access_token"]
    # PyJWT, with the issuer's published keys, agrees the token is bound to Authlib's key
    signing = pyjwt.PyJWKClient(issuer.url + "/.well-known/jwks.json").get_signing_key_from_jwt(at)
    claims = pyjwt.decode(at, signing.key, algorithms=["ES256"], audience="api",
                          issuer=issuer.url)
    assert claims["cnf"] == {"jkt": client.jkt}
    url = f"http://127.0.0.1:{gateway.port}/dpop/orders/7"
    seen = len(upstream.requests)
    r = httpx.get(url, headers={"Authorization": f"DPoP {at}",
                                "DPoP": client.proof("GET", url, token=at)})
    assert r.status_code == 200, r.text
    assert upstream.requests[seen].target == "/dpop/orders/7"
