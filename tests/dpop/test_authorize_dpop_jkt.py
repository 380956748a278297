"""RFC 9449 §10: an authorization request with `dpop_jkt` binds the code to that key; the code
is redeemed at the real issuer's token endpoint only with a proof of the same key."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.issuer.support import IssuerProcess, pkce_pair, set_cookies
from tests.support.dpop import DpopKey
from wardgate.issuer import cookies as names

APP = ("spa-dpop", "http://127.0.0.1:7011/cb")


@pytest.fixture(scope="module")
def app(issuer: IssuerProcess) -> tuple[str, str]:
    issuer.add_client(APP[0], name="DPoP app", auth_method="none",
                      grant_types=["authorization_code", "refresh_token"],
                      scopes=["openid", "orders:read"], audiences=["api"],
                      redirect_uris=[APP[1]])
    return APP


def _params(challenge: str, **over: str) -> dict[str, str]:
    p = {"response_type": "code", "client_id": APP[0], "redirect_uri": APP[1],
         "scope": "openid orders:read", "state": "st-1", "code_challenge": challenge,
         "code_challenge_method": "S256"}
    p.update(over)
    return p


def _fields(html: str) -> dict[str, str]:
    return {m[0]: m[1].replace("&amp;", "&")
            for m in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)}


def _code(http: httpx.Client, challenge: str, **over: str) -> str:
    """Sign in on the hosted page (the dpop_jkt travels in its hidden fields) -> the code."""
    page = http.get("/authorize", params=_params(challenge, **over))
    assert page.status_code == 200, page.text
    fields = _fields(page.text)
    if "dpop_jkt" in over:
        assert fields["dpop_jkt"] == over["dpop_jkt"]
    login_cookie = set_cookies(page)[names.LOGIN_CSRF]["value"]
    r = http.post("/authorize", content=urlencode(
        fields | {"username": "alice", "password": "correct horse"}), headers={
        "content-type": "application/x-www-form-urlencoded",
        "cookie": f"{names.LOGIN_CSRF}={login_cookie}"})
    assert r.status_code == 303, r.text
    q = parse_qs(urlsplit(r.headers["location"]).query)
    assert "error" not in q, q
    return q["code"][0]


def _redeem(http: httpx.Client, issuer: IssuerProcess, code: str, verifier: str,
            proof: str | None) -> httpx.Response:
    return http.post("/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": APP[1],
        "client_id": APP[0], "code_verifier": verifier},
        headers={"DPoP": proof} if proof else {})


def test_bound_code_with_the_matching_proof(issuer: IssuerProcess, app: object) -> None:
    key = DpopKey("ES256")
    with issuer.client() as http:
        verifier, challenge = pkce_pair()
        code = _code(http, challenge, dpop_jkt=key.jkt)
        r = _redeem(http, issuer, code, verifier, key.proof("POST", issuer.url + "/token"))
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["token_type"] == "DPoP"
        assert issuer.verify(out["access_token"])["cnf"] == {"jkt": key.jkt}
        # the public client's refresh token is bound to the same key
        r = http.post("/token", data={"grant_type": "refresh_token",
                                      "refresh_token": out["refresh_token"]})
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"


@pytest.mark.parametrize("case", ["other_key", "no_proof"])
def test_bound_code_refused_without_the_key(issuer: IssuerProcess, app: object,
                                            case: str) -> None:
    key = DpopKey("ES256")
    with issuer.client() as http:
        verifier, challenge = pkce_pair()
        code = _code(http, challenge, dpop_jkt=key.jkt)
        proof = DpopKey("EdDSA").proof("POST", issuer.url + "/token") \
            if case == "other_key" else None
        r = _redeem(http, issuer, code, verifier, proof)
        assert r.status_code == 400, r.text
        expected = "invalid_grant" if case == "other_key" else "invalid_dpop_proof"
        assert r.json()["error"] == expected
        # the refused attempt did not use the code up: its rightful holder still redeems it
        r = _redeem(http, issuer, code, verifier, key.proof("POST", issuer.url + "/token"))
        assert r.status_code == 200, r.text
        assert issuer.verify(r.json()["access_token"])["cnf"] == {"jkt": key.jkt}


def test_unbound_code_still_takes_an_optional_proof(issuer: IssuerProcess, app: object) -> None:
    with issuer.client() as http:
        verifier, challenge = pkce_pair()
        r = _redeem(http, issuer, _code(http, challenge), verifier, None)
        assert r.status_code == 200 and r.json()["token_type"] == "Bearer", r.text


@pytest.mark.parametrize("bad", ["", "short", "x" * 44, "a" * 42 + "=",
                                 "a" * 42 + "+", "é" * 43])
def test_malformed_dpop_jkt_refused(issuer: IssuerProcess, app: object, bad: str) -> None:
    """The client and redirect_uri are good, so the error goes back to the client (RFC 6749
    §4.1.2.1: invalid_request with a description), never a code bound to garbage."""
    with issuer.client() as http:
        _, challenge = pkce_pair()
        r = http.get("/authorize", params=_params(challenge, dpop_jkt=bad))
        assert r.status_code == 303, r.text
        loc = urlsplit(r.headers["location"])
        assert f"{loc.scheme}://{loc.netloc}{loc.path}" == APP[1]
        q = parse_qs(loc.query)
        assert q["error"] == ["invalid_request"] and "code" not in q
        assert "dpop_jkt" in q["error_description"][0]
        assert q["state"] == ["st-1"]


def test_repeated_dpop_jkt_refused_on_a_page(issuer: IssuerProcess, app: object) -> None:
    key = DpopKey("ES256")
    _, challenge = pkce_pair()
    query = urlencode(_params(challenge)) + "&dpop_jkt=" + key.jkt + "&dpop_jkt=" + key.jkt
    with issuer.client() as http:
        r = http.get("/authorize?" + query)
    assert r.status_code == 400 and "repeated parameter" in r.text


def test_sso_code_is_bound_too(issuer: IssuerProcess, app: object) -> None:
    """A code issued from the issuer session (no form) carries the binding as well."""
    key = DpopKey("ES256")
    with issuer.client() as http:
        _, challenge = pkce_pair()
        page = http.get("/authorize", params=_params(challenge))
        login_cookie = set_cookies(page)[names.LOGIN_CSRF]["value"]
        r = http.post("/authorize", content=urlencode(
            _fields(page.text) | {"username": "alice", "password": "correct horse"}),
            headers={"content-type": "application/x-www-form-urlencoded",
                     "cookie": f"{names.LOGIN_CSRF}={login_cookie}"})
        session = set_cookies(r)[names.SESSION]["value"]
        verifier, challenge = pkce_pair()
        sso = http.get("/authorize", params=_params(challenge, dpop_jkt=key.jkt),
                       headers={"cookie": f"{names.SESSION}={session}"})
        assert sso.status_code == 303, sso.text
        code = parse_qs(urlsplit(sso.headers["location"]).query)["code"][0]
        assert _redeem(http, issuer, code, verifier, None).json()["error"] == \
            "invalid_dpop_proof"
        r = _redeem(http, issuer, code, verifier, key.proof("POST", issuer.url + "/token"))
        assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
