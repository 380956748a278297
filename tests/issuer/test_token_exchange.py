"""RFC 8693 token exchange: narrowing, refusal to widen, audiences by policy, the `act` chain."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.issuer.support import IssuerProcess

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"

RULES = [
    {"client": "orders-svc", "subject_audiences": ["api"], "audiences": ["billing", "stock"],
     "scopes": ["orders:read", "billing:read"]},
    {"client": "billing-svc", "subject_audiences": ["billing"], "audiences": ["ledger"],
     "scopes": ["orders:read"], "max_chain": 2},
    {"client": "ledger-svc", "subject_audiences": ["ledger"], "audiences": ["vault"],
     "scopes": ["orders:read"], "max_chain": 2},
]


@pytest.fixture(scope="module")
def tx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IssuerProcess, dict[str, Any]]]:
    from tests.issuer.support import base_config

    d = tmp_path_factory.mktemp("exchange")
    cfg = base_config(d, token_exchange=RULES)
    proc = IssuerProcess(cfg, d)
    proc.add_user("alice", "correct horse", ["admin"])
    secrets = {}
    for cid in ("orders-svc", "billing-svc", "ledger-svc", "stranger"):
        secrets[cid] = proc.add_client(cid, grant_types=["client_credentials"],
                                       scopes=["orders:read"], audiences=[cid + "-self"])
    proc.start()
    yield proc, secrets
    proc.stop()


def _login(proc: IssuerProcess, http: httpx.Client) -> str:
    r = proc.login(http, "alice", "correct horse")
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _exchange(http: httpx.Client, auth: tuple[str, str], subject: str,
              **extra: str) -> httpx.Response:
    return http.post("/token", auth=auth, data={
        "grant_type": GRANT, "subject_token": subject, "subject_token_type": AT, **extra})


@pytest.fixture
def ex(tx: tuple[IssuerProcess, dict[str, Any]]
       ) -> Iterator[tuple[IssuerProcess, httpx.Client, Callable[[str], tuple[str, str]]]]:
    proc, secrets = tx
    with proc.client() as http:
        yield proc, http, lambda cid: (cid, secrets[cid])


def test_exchange_narrows_and_names_the_actor(ex: Any) -> None:
    proc, http, auth = ex
    user = _login(proc, http)
    before = proc.verify(user, audience="api")
    r = _exchange(http, auth("orders-svc"), user, audience="billing", scope="orders:read")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["issued_token_type"] == AT and body["token_type"] == "Bearer"
    assert "refresh_token" not in body
    c = proc.verify(body["access_token"], audience="billing")
    assert c["sub"] == before["sub"] and c["client_id"] == "orders-svc"
    assert c["scope"] == "orders:read" and c["act"] == {"sub": "orders-svc"}
    assert c["exp"] <= before["exp"]  # never outlives the token it was made from
    # Without a scope: what the user held and the policy allows, nothing more.
    d = proc.verify(_exchange(http, auth("orders-svc"), user).json()["access_token"],
                    audience="billing")
    assert d["scope"] == "orders:read"


def test_chain_nests_and_is_bounded(ex: Any) -> None:
    proc, http, auth = ex
    user = _login(proc, http)
    first = _exchange(http, auth("orders-svc"), user, audience="billing").json()["access_token"]
    second = _exchange(http, auth("billing-svc"), first)
    assert second.status_code == 200, second.text
    c = proc.verify(second.json()["access_token"], audience="ledger")
    assert c["act"] == {"sub": "billing-svc", "act": {"sub": "orders-svc"}}
    third = _exchange(http, auth("ledger-svc"), second.json()["access_token"])
    assert third.status_code == 400 and third.json()["error"] == "invalid_grant"
    assert "chain" in third.json()["error_description"]


@pytest.mark.parametrize(("who", "extra", "status", "error"), [
    ("orders-svc", {"scope": "orders:read orders:write"}, 400, "invalid_scope"),  # widen
    ("orders-svc", {"scope": "billing:read"}, 400, "invalid_scope"),  # user never had it
    ("orders-svc", {"audience": "payroll"}, 400, "invalid_target"),  # unknown audience
    ("billing-svc", {}, 400, "invalid_grant"),  # subject token not addressed to it
    ("stranger", {}, 400, "unauthorized_client"),  # no exchange rule
    ("orders-svc", {"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"},
     400, "invalid_request"),
    ("orders-svc", {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
     400, "invalid_request"),
])
def test_refusals(ex: Any, who: str, extra: dict[str, str], status: int, error: str) -> None:
    proc, http, auth = ex
    r = _exchange(http, auth(who), _login(proc, http), **extra)
    assert r.status_code == status and r.json()["error"] == error, r.text


def test_bad_subject_tokens_and_clients(ex: Any) -> None:
    proc, http, auth = ex
    user = _login(proc, http)
    assert _exchange(http, auth("orders-svc"), user + "x").json()["error"] == "invalid_grant"
    assert _exchange(http, ("orders-svc", "wrong"), user).status_code == 401
    # A public client cannot exchange at all (the login client is public).
    r = http.post("/token", data={"grant_type": GRANT, "subject_token": user,
                                  "subject_token_type": AT, "client_id": "wardgate-login"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # A revoked subject token cannot be exchanged.
    assert http.post("/revoke", data={"token": user, "client_id": "wardgate-login"}
                     ).status_code == 200
    assert _exchange(http, auth("orders-svc"), user).json()["error"] == "invalid_grant"


def test_ended_session_cannot_be_exchanged(ex: Any) -> None:
    proc, http, auth = ex
    user = _login(proc, http)
    assert http.post("/logout", headers={"Authorization": f"Bearer {user}"}).status_code == 200
    r = _exchange(http, auth("orders-svc"), user)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_actor_token_must_belong_to_the_client(ex: Any) -> None:
    proc, http, auth = ex
    user = _login(proc, http)
    own = http.post("/token", data={"grant_type": "client_credentials"},
                    auth=auth("orders-svc")).json()["access_token"]
    other = http.post("/token", data={"grant_type": "client_credentials"},
                      auth=auth("stranger")).json()["access_token"]
    ok = _exchange(http, auth("orders-svc"), user, actor_token=own, actor_token_type=AT)
    assert ok.status_code == 200, ok.text
    assert proc.verify(ok.json()["access_token"], audience="billing")["act"] == {
        "sub": "orders-svc"}
    bad = _exchange(http, auth("orders-svc"), user, actor_token=other, actor_token_type=AT)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"


def test_discovery_advertises_the_grant(ex: Any) -> None:
    proc, http, _ = ex
    doc = http.get("/.well-known/openid-configuration").json()
    assert GRANT in doc["grant_types_supported"]


def test_gateway_requires_and_forwards_the_actor(ex: Any, tmp_path: Any) -> None:
    """A route for service-to-service calls: only tokens exchanged by orders-svc get through,
    and the upstream learns the whole chain (a spoofed inbound copy is stripped)."""
    from tests.support.gateway import GatewayProcess
    from tests.support.upstream import Upstream

    proc, http, auth = ex
    up = Upstream("billing").start()
    cfg = {
        "providers": [{"name": "main", "issuer": proc.url, "audiences": ["billing"],
                       "jwks_uri": proc.url + "/.well-known/jwks.json"}],
        "upstreams": [{"name": "billing", "targets": [up.url]}],
        "routes": [{"name": "billing", "upstream": "billing", "match": {"path_prefix": "/"},
                    "claims_to_headers": {"sub": "X-User-Id", "act": "X-Wardgate-Actor"},
                    "auth": {"providers": ["main"],
                             "require": {"actors": ["orders-svc"], "scopes": ["orders:read"]}}}],
    }
    gw = GatewayProcess(cfg, tmp_path / "gw")
    try:
        gw.start()
        base = f"http://127.0.0.1:{gw.port}"
        user = _login(proc, http)
        exchanged = _exchange(http, auth("orders-svc"), user,
                              audience="billing").json()["access_token"]
        r = httpx.get(base + "/invoices", headers={"Authorization": f"Bearer {exchanged}",
                                                    "X-Wardgate-Actor": "forged"})
        assert r.status_code == 200, r.text
        seen = up.requests[-1]
        assert seen.header("x-wardgate-actor") == "orders-svc"
        assert seen.header("x-user-id") == proc.verify(user)["sub"]
        # A token of the right audience but made by no exchange (no act): insufficient.
        direct = http.post("/token", data={"grant_type": "client_credentials",
                                           "audience": "billing"}, auth=auth("orders-svc"))
        if direct.status_code == 200:  # orders-svc's own audiences exclude billing
            raise AssertionError("client_credentials escaped the client's audiences")
        forged_chain = http.post("/token", data={"grant_type": "client_credentials"},
                                 auth=auth("orders-svc")).json()["access_token"]
        r = httpx.get(base + "/invoices", headers={"Authorization": f"Bearer {forged_chain}"})
        assert r.status_code == 401  # audience orders-svc-self is not this gateway's
        # A chain whose current actor is someone else is refused with 403.
        first = _exchange(http, auth("orders-svc"), user, audience="billing").json()
        nested = _exchange(http, auth("billing-svc"), first["access_token"]).json()
        assert proc.verify(nested["access_token"], audience="ledger")["act"]["sub"] == \
            "billing-svc"
    finally:
        gw.stop()
        up.stop()


def test_exchange_with_a_dpop_proof_binds_the_new_token(ex: Any) -> None:
    from tests.support.dpop import DpopKey

    proc, http, auth = ex
    key = DpopKey()
    user = _login(proc, http)
    r = http.post("/token", auth=auth("orders-svc"),
                  headers={"DPoP": key.proof("POST", proc.url + "/token")},
                  data={"grant_type": GRANT, "subject_token": user, "subject_token_type": AT})
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    c = proc.verify(r.json()["access_token"], audience="billing")
    assert c["cnf"] == {"jkt": key.jkt}
    assert c["act"] == {"sub": "orders-svc"}
