"""Zero-trust mode through the framework-agnostic function: a real JWKS on 127.0.0.1, tokens
minted with PyJWT, every refusal checked against the gateway's RFC 6750 answer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from tests.service.support import JwksServer, SigningKey, claims
from wardgate.service import (
    InvalidRequest,
    InvalidToken,
    MissingToken,
    ServiceAuth,
    ServiceUnavailable,
    authenticate,
    render,
)


@pytest.fixture
async def auth(jwks: JwksServer) -> AsyncIterator[ServiceAuth]:
    a = ServiceAuth.zero_trust(jwks.issuer, "api", jwks_uri=jwks.jwks_uri)
    await a.start()
    yield a
    await a.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_valid_token_gives_identity(auth: ServiceAuth, jwks: JwksServer,
                                          key: SigningKey) -> None:
    token = key.mint(claims(jwks.issuer, scope="orders:read orders:write", roles=["admin"]))
    ident = await authenticate(auth, bearer(token))
    assert ident.sub == "42"
    assert ident.scopes == {"orders:read", "orders:write"}
    assert ident.roles == {"admin"}
    assert auth.mode == "zero_trust" and auth.ready()


async def test_header_shapes_accepted(auth: ServiceAuth, jwks: JwksServer, key: SigningKey) -> None:
    token = key.mint(claims(jwks.issuer))
    for headers in (bearer(token), [("authorization", f"Bearer {token}")],
                    [(b"Authorization", f"bearer {token}".encode())]):
        assert (await authenticate(auth, headers)).sub == "42"


async def test_a_reused_token_is_served_from_cache(auth: ServiceAuth, jwks: JwksServer,
                                                   key: SigningKey) -> None:
    # cached on its second verification (the cache's doorkeeper), served from it afterwards
    token = key.mint(claims(jwks.issuer))
    first = await authenticate(auth, bearer(token))
    second = await authenticate(auth, bearer(token))
    assert second is not first
    assert await authenticate(auth, bearer(token)) is second
    assert await authenticate(auth, bearer(token)) is second


async def test_missing_token_is_401_without_error(auth: ServiceAuth) -> None:
    with pytest.raises(MissingToken) as exc:
        await authenticate(auth, {"Accept": "*/*"})
    status, headers, body = render(exc.value, realm="orders")
    assert status == 401
    # RFC 6750 §3.1: no error attribute when the request simply had no token
    assert dict(headers)[b"www-authenticate"] == b'Bearer realm="orders"'
    assert b'"code":"no_token"' in body


@pytest.mark.parametrize("case", ["bad_signature", "expired", "wrong_aud", "wrong_iss",
                                  "wrong_typ", "alg_none", "garbage"])
async def test_bad_tokens_are_401_invalid_token(auth: ServiceAuth, jwks: JwksServer,
                                                key: SigningKey, other_key: SigningKey,
                                                case: str) -> None:
    now = int(time.time())
    token = {
        "bad_signature": other_key.mint(claims(jwks.issuer), kid="k1"),
        "expired": key.mint(claims(jwks.issuer, iat=now - 900, nbf=now - 900, exp=now - 600)),
        "wrong_aud": key.mint(claims(jwks.issuer, aud="billing")),
        "wrong_iss": key.mint(claims("http://127.0.0.1:1")),
        "wrong_typ": key.mint(claims(jwks.issuer), typ="dpop+jwt"),
        "alg_none": "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0."
                    + key.mint(claims(jwks.issuer)).split(".")[1] + ".",
        "garbage": "not.a.jwt",
    }[case]
    with pytest.raises(InvalidToken) as exc:
        await authenticate(auth, bearer(token))
    status, headers, body = render(exc.value)
    assert status == 401
    challenge = dict(headers)[b"www-authenticate"].decode()
    assert challenge.startswith('Bearer realm="wardgate", error="invalid_token"')
    want = "expired" if case == "expired" else "is invalid"
    assert want in challenge
    assert token.encode() not in body  # never echo the token
    assert b'"code":"invalid_token"' in body  # nor say which check failed


async def test_malformed_authorization_is_400_invalid_request(auth: ServiceAuth) -> None:
    with pytest.raises(InvalidRequest) as exc:
        await authenticate(auth, [("authorization", "Bearer a b c")])
    status, headers, _ = render(exc.value)
    assert status == 400
    assert b'error="invalid_request"' in dict(headers)[b"www-authenticate"]


async def test_two_authorization_headers_are_refused(auth: ServiceAuth, jwks: JwksServer,
                                                     key: SigningKey) -> None:
    token = key.mint(claims(jwks.issuer))
    with pytest.raises(InvalidRequest):
        await authenticate(auth, [("authorization", f"Bearer {token}")] * 2)


async def test_rotated_key_is_fetched_on_unknown_kid(auth: ServiceAuth, jwks: JwksServer,
                                                     key: SigningKey,
                                                     other_key: SigningKey) -> None:
    jwks.keys = [key.jwk, other_key.jwk]  # the issuer publishes a new key after our fetch
    before = jwks.hits.get("/jwks.json", 0)
    ident = await authenticate(auth, bearer(other_key.mint(claims(jwks.issuer))))
    assert ident.sub == "42"
    assert jwks.hits["/jwks.json"] == before + 1


async def test_discovery_finds_the_jwks(jwks: JwksServer, key: SigningKey) -> None:
    auth = ServiceAuth.zero_trust(jwks.issuer, "api")  # no jwks_uri: OIDC discovery
    try:
        ident = await authenticate(auth, bearer(key.mint(claims(jwks.issuer))))  # lazy start
        assert ident.sub == "42"
        assert jwks.hits["/.well-known/openid-configuration"] == 1
    finally:
        await auth.stop()


async def test_keys_unavailable_is_503(jwks: JwksServer, key: SigningKey) -> None:
    jwks.fail = True
    auth = ServiceAuth.zero_trust(jwks.issuer, "api", jwks_uri=jwks.jwks_uri)
    try:
        await auth.start()  # degraded start: the service runs, answers 503 until keys come
        assert not auth.ready()
        with pytest.raises(ServiceUnavailable) as exc:
            await authenticate(auth, bearer(key.mint(claims(jwks.issuer))))
        status, headers, _ = render(exc.value)
        assert status == 503 and dict(headers)[b"retry-after"] == b"5"
    finally:
        await auth.stop()


def test_bad_provider_settings_fail_early() -> None:
    with pytest.raises(ValueError):
        ServiceAuth.zero_trust("http://127.0.0.1:9000", "api", algorithms=["none"])
    with pytest.raises(ValueError):
        # plain http to a non-loopback issuer is refused, as in the gateway's config
        ServiceAuth.zero_trust("http://issuer.example.com", "api")
