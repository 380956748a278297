"""What each `key:` kind counts by, and the client-address fallback (never one shared bucket)."""

from __future__ import annotations

from typing import Any

import pytest

from wardgate.auth.identity import Identity
from wardgate.gateway.headers import TrustedProxies
from wardgate.gateway.request import Request
from wardgate.limits.keys import compile_key

NONE = TrustedProxies([])


def req(ip: str = "198.51.100.7", claims: dict[str, Any] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    r = Request()
    r.client_ip = ip
    r.headers = headers or []
    if claims is not None:
        r.identity = Identity("main", claims, b"", ("roles",), None, 0.0)
    return r


def test_sub_is_per_provider_and_subject() -> None:
    k = compile_key("sub", "api", NONE)
    assert k(req(claims={"sub": "alice"})) == "s:main\0alice"
    assert k(req(claims={"sub": "alice"})) != k(req(claims={"sub": "bob"}))


@pytest.mark.parametrize("spec", ["sub", "client_id", "claim:tenant.id", "header:X-Api-Key"])
def test_a_request_without_the_key_is_counted_by_its_address(spec: str) -> None:
    k = compile_key(spec, "api", NONE)
    assert k(req("203.0.113.1")) == "ip:203.0.113.1"
    assert k(req("203.0.113.2", claims={})) == "ip:203.0.113.2"  # anonymous ones apart


def test_a_subject_named_like_an_address_gets_its_own_bucket() -> None:
    k = compile_key("sub", "api", NONE)
    assert k(req("203.0.113.1", claims={"sub": "203.0.113.1"})) != k(req("203.0.113.1"))


def test_client_id_then_azp() -> None:
    k = compile_key("client_id", "api", NONE)
    assert k(req(claims={"client_id": "svc-a"})) == "c:main\0svc-a"
    assert k(req(claims={"azp": "web"})) == "c:main\0web"


def test_claim_path_and_header() -> None:
    assert compile_key("claim:tenant.id", "api", NONE)(
        req(claims={"tenant": {"id": 42}})) == "k:main\x0042"
    assert compile_key("claim:tenant.id", "api", NONE)(
        req("192.0.2.9", claims={"tenant": {"id": True}})) == "ip:192.0.2.9"  # not a scalar key
    assert compile_key("header:X-Api-Key", "api", NONE)(
        req(headers=[(b"x-api-key", b"k1")])) == "h:k1"


def test_route_is_one_bucket_for_the_route() -> None:
    k = compile_key("route", "api", NONE)
    assert k(req("192.0.2.1")) == k(req("192.0.2.2")) == "r:api"


def test_long_values_are_hashed_to_a_bounded_key() -> None:
    k = compile_key("header:X-Api-Key", "api", NONE)
    a = k(req(headers=[(b"x-api-key", b"a" * 5000)]))
    b = k(req(headers=[(b"x-api-key", b"a" * 4999 + b"b")]))
    assert len(a) < 64 and a != b


def test_ip_behind_trusted_proxies_is_the_first_untrusted_hop() -> None:
    k = compile_key("ip", "api", TrustedProxies(["10.0.0.0/8"]))
    xff = [(b"x-forwarded-for", b"203.0.113.5, 198.51.100.1, 10.1.1.1")]
    assert k(req("10.0.0.2", headers=xff)) == "ip:198.51.100.1"
    # a peer that is not trusted is counted itself, whatever it claims
    assert k(req("192.0.2.66", headers=xff)) == "ip:192.0.2.66"
    # a forged, malformed hop stops the walk at the last address a trusted party gave
    bad = [(b"x-forwarded-for", b"203.0.113.5, not-an-ip, 10.1.1.1")]
    assert k(req("10.0.0.2", headers=bad)) == "ip:10.1.1.1"
