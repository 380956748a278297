"""Trusted-gateway mode (identity headers) and require_scopes / require_roles: the same
answers as the gateway's own auth filter gives."""

from __future__ import annotations

import base64
import json

import pytest

from wardgate.auth.identity import Identity
from wardgate.errors import AuthError
from wardgate.service import (
    GatewayHeaders,
    InsufficientScope,
    InvalidToken,
    MissingToken,
    ServiceAuth,
    authenticate,
    authenticated,
    render,
    require_roles,
    require_scopes,
)

HEADERS = {"X-User-Id": "7", "X-User-Roles": "admin,auditor", "X-User-Scope": "orders:read reports:read"}


@pytest.fixture
def auth() -> ServiceAuth:
    return ServiceAuth.trust_gateway(sub="X-User-Id", roles="X-User-Roles", scope="X-User-Scope")


async def test_identity_from_gateway_headers(auth: ServiceAuth) -> None:
    ident = await authenticate(auth, HEADERS, peer="127.0.0.1")
    assert ident.sub == "7"
    assert ident.roles == {"admin", "auditor"}
    assert ident.scopes == {"orders:read", "reports:read"}
    assert auth.mode == "trust_gateway" and auth.ready()


async def test_no_identity_header_is_401(auth: ServiceAuth) -> None:
    with pytest.raises(MissingToken):
        await authenticate(auth, {"X-User-Roles": "admin"}, peer="127.0.0.1")


async def test_headers_from_an_untrusted_peer_are_ignored(auth: ServiceAuth) -> None:
    with pytest.raises(MissingToken):
        await authenticate(auth, HEADERS, peer="10.1.2.3")
    with pytest.raises(MissingToken):
        await authenticate(auth, HEADERS, peer=None)


async def test_peer_networks_are_configurable() -> None:
    auth = ServiceAuth.trust_gateway(sub="X-User-Id", trusted_peers=["10.0.0.0/8"])
    assert (await authenticate(auth, HEADERS, peer="10.1.2.3")).sub == "7"
    with pytest.raises(MissingToken):
        await authenticate(auth, HEADERS, peer="127.0.0.1")
    with pytest.raises(ValueError):
        GatewayHeaders(trusted_peers=("not-a-network",))


async def test_payload_header_carries_every_claim() -> None:
    auth = ServiceAuth.trust_gateway(GatewayHeaders(payload="X-Wardgate-Claims"))
    claims = {"sub": "9", "scope": "a b", "roles": ["admin"], "tenant": "acme"}
    raw = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    ident = await authenticate(auth, [(b"x-wardgate-claims", raw)], peer="::1")
    assert (ident.sub, ident.claims["tenant"]) == ("9", "acme")
    assert ident.scopes == {"a", "b"} and ident.roles == {"admin"}
    with pytest.raises(InvalidToken):
        await authenticate(auth, [(b"x-wardgate-claims", b"%%%")], peer="::1")


def test_exactly_one_mode() -> None:
    with pytest.raises(ValueError):
        ServiceAuth()
    with pytest.raises(ValueError):
        ServiceAuth.trust_gateway(GatewayHeaders(), sub="X")


def _ident(scope: str = "orders:read", roles: list[str] | None = None) -> Identity:
    return Identity("p", {"sub": "1", "scope": scope, "roles": roles or []}, b"", ("roles",),
                    None, 2e9)


def test_require_scopes_lists_what_is_missing() -> None:
    check = require_scopes("orders:read", "orders:write", "reports:read")
    with pytest.raises(InsufficientScope) as exc:
        check.check(_ident("orders:read"))
    status, headers, body = render(exc.value, realm="orders")
    assert status == 403
    # RFC 6750 §3: the scope attribute names what the request needs and the token lacks
    assert dict(headers)[b"www-authenticate"] == (
        b'Bearer realm="orders", error="insufficient_scope", error_description="The access '
        b'token lacks the privileges this request needs", scope="orders:write reports:read"')
    assert json.loads(body)["status"] == 403
    ident = _ident("orders:read orders:write reports:read")
    assert check.check(ident) is ident


def test_require_roles_is_403_without_scope_attribute() -> None:
    with pytest.raises(InsufficientScope) as exc:
        require_roles("admin").check(_ident(roles=["user"]))
    _, headers, _ = render(exc.value)
    assert b"scope=" not in dict(headers)[b"www-authenticate"]
    assert require_roles("admin", "user").check(_ident(roles=["admin", "user"]))


def test_no_identity_is_401() -> None:
    for req in (require_scopes("a"), require_roles("b"), authenticated()):
        with pytest.raises(MissingToken):
            req.check(None)


def test_requirements_name_something() -> None:
    with pytest.raises(ValueError):
        require_scopes()
    with pytest.raises(ValueError):
        require_roles()


def test_service_errors_are_the_gateways_errors() -> None:
    # one error tree: the gateway's renderer and the service's renderer see the same classes
    assert issubclass(InsufficientScope, AuthError) and issubclass(MissingToken, AuthError)
