"""Authorization code + PKCE S256, hosted login page with CSRF, SSO across two applications."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.issuer.support import IssuerProcess, pkce_pair, set_cookies
from wardgate.issuer import cookies as names

APP1 = ("shop", "http://127.0.0.1:7001/cb")
APP2 = ("books", "http://127.0.0.1:7002/callback")


@pytest.fixture(scope="module")
def apps(issuer: IssuerProcess) -> dict[str, str | None]:
    s1 = issuer.add_client(APP1[0], name="The Shop", auth_method="none",
                           grant_types=["authorization_code", "refresh_token"],
                           scopes=["openid", "profile", "orders:read"], audiences=["shop-api"],
                           redirect_uris=[APP1[1]])
    s2 = issuer.add_client(APP2[0], name="Books", auth_method="client_secret_basic",
                           grant_types=["authorization_code"],
                           scopes=["openid", "orders:read", "orders:write"],
                           audiences=["books-api"], redirect_uris=[APP2[1]])
    return {"shop": s1, "books": s2}


def _authz_params(app: tuple[str, str], challenge: str, **over: str) -> dict[str, str]:
    p = {"response_type": "code", "client_id": app[0], "redirect_uri": app[1],
         "scope": "openid orders:read", "state": "st-123", "nonce": "n-456",
         "code_challenge": challenge, "code_challenge_method": "S256"}
    p.update(over)
    return {k: v for k, v in p.items() if v != ""}


def _form_fields(html: str) -> dict[str, str]:
    return {m[0]: m[1].replace("&amp;", "&").replace("&quot;", '"')
            for m in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)}


def _sign_in(http: httpx.Client, app: tuple[str, str], challenge: str, user: str = "alice",
             password: str = "correct horse", **over: str) -> tuple[httpx.Response, str]:
    page = http.get("/authorize", params=_authz_params(app, challenge, **over))
    assert page.status_code == 200, page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    login_cookie = set_cookies(page)[names.LOGIN_CSRF]["value"]
    fields = _form_fields(page.text) | {"username": user, "password": password}
    r = http.post("/authorize", content=urlencode(fields), headers={
        "content-type": "application/x-www-form-urlencoded",
        "cookie": f"{names.LOGIN_CSRF}={login_cookie}"})
    return r, login_cookie


def _code(resp: httpx.Response, app: tuple[str, str], issuer: IssuerProcess) -> str:
    assert resp.status_code == 303, resp.text
    loc = urlsplit(resp.headers["location"])
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == app[1]
    q = parse_qs(loc.query)
    assert q["state"] == ["st-123"] and q["iss"] == [issuer.url]  # RFC 9207
    return q["code"][0]


def _exchange(http: httpx.Client, app: tuple[str, str], code: str, verifier: str | None,
              auth: tuple[str, str] | None = None, **over: str) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": app[1]}
    if verifier is not None:
        data["code_verifier"] = verifier
    if auth is None:
        data["client_id"] = app[0]
    data.update(over)
    return http.post("/token", data=data, auth=auth)  # type: ignore[arg-type]


def test_code_flow_with_id_token_then_sso_to_second_app(
        issuer: IssuerProcess, apps: dict[str, str | None]) -> None:
    with issuer.client() as http:
        verifier, challenge = pkce_pair()
        resp, _ = _sign_in(http, APP1, challenge)
        session = set_cookies(resp)[names.SESSION]
        assert "httponly" in session and "secure" in session
        tok = _exchange(http, APP1, _code(resp, APP1, issuer), verifier)
        assert tok.status_code == 200, tok.text
        body = tok.json()
        at = issuer.verify(body["access_token"], audience="shop-api")
        assert at["client_id"] == "shop" and at["scope"] == "openid orders:read"
        idt = issuer.verify(body["id_token"], audience="shop", typ="JWT")
        assert idt["nonce"] == "n-456" and idt["sid"] == at["sid"] and idt["auth_time"]
        assert "refresh_token" in body

        # Second application: the issuer session signs in without a password prompt.
        v2, c2 = pkce_pair()
        sso = http.get("/authorize", params=_authz_params(APP2, c2),
                       headers={"cookie": f"{names.SESSION}={session['value']}"})
        tok2 = _exchange(http, APP2, _code(sso, APP2, issuer), v2,
                         auth=(APP2[0], apps["books"] or ""))
        assert tok2.status_code == 200, tok2.text
        at2 = issuer.verify(tok2.json()["access_token"], audience="books-api")
        assert at2["sub"] == at["sub"] and at2["client_id"] == "books"
        assert "refresh_token" not in tok2.json()  # books has no refresh_token grant
        # Each application's token is restricted to its own audience.
        import jwt as pyjwt
        with pytest.raises(pyjwt.InvalidAudienceError):
            issuer.verify(tok2.json()["access_token"], audience="shop-api")

        # prompt=none without a session answers login_required to the client.
        r = http.get("/authorize", params=_authz_params(APP1, c2, prompt="none"))
        assert r.status_code == 303 and "error=login_required" in r.headers["location"]


@pytest.mark.parametrize("case", ["wrong_verifier", "no_verifier", "short_verifier",
                                  "other_redirect", "other_client"])
def test_pkce_and_code_binding_failures(issuer: IssuerProcess, apps: dict[str, str | None],
                                        case: str) -> None:
    with issuer.client() as http:
        verifier, challenge = pkce_pair()
        resp, _ = _sign_in(http, APP1, challenge)
        code = _code(resp, APP1, issuer)
        if case == "wrong_verifier":
            r = _exchange(http, APP1, code, pkce_pair()[0])
        elif case == "no_verifier":
            r = _exchange(http, APP1, code, None)
        elif case == "short_verifier":
            r = _exchange(http, APP1, code, "abc")
        elif case == "other_redirect":
            r = _exchange(http, APP1, code, verifier, redirect_uri=APP1[1] + "/x")
        else:
            r = _exchange(http, APP2, code, verifier, auth=(APP2[0], apps["books"] or ""),
                          redirect_uri=APP1[1])
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


def test_code_replay_revokes_tokens_issued_from_it(issuer: IssuerProcess,
                                                   apps: dict[str, str | None]) -> None:
    with issuer.client() as http:
        verifier, challenge = pkce_pair()
        resp, _ = _sign_in(http, APP1, challenge)
        code = _code(resp, APP1, issuer)
        first = _exchange(http, APP1, code, verifier).json()
        replay = _exchange(http, APP1, code, verifier)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        r = http.post("/token", data={"grant_type": "refresh_token", "client_id": "shop",
                                      "refresh_token": first["refresh_token"]})
        assert r.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(("over", "error"), [
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": ""}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"resource": "payroll"}, "invalid_target"),
    ({"scope": "bad\"scope"}, "invalid_request"),
])
def test_authorize_errors_redirect_back_with_state(issuer: IssuerProcess,
                                                   apps: dict[str, str | None], over: dict,
                                                   error: str) -> None:
    _, challenge = pkce_pair()
    with issuer.client() as http:
        r = http.get("/authorize", params=_authz_params(APP1, challenge, **over))
    assert r.status_code == 303
    q = parse_qs(urlsplit(r.headers["location"]).query)
    assert q["error"] == [error] and q["state"] == ["st-123"]


@pytest.mark.parametrize("over", [
    {"redirect_uri": "http://127.0.0.1:7001/cb/"},  # exact match: no trailing slash games
    {"redirect_uri": "http://127.0.0.1:7001/cb?x=1"},
    {"redirect_uri": "https://evil.example/cb"},
    {"client_id": "no-such-app"},
    {"redirect_uri": ""},
])
def test_bad_client_or_redirect_uri_is_never_redirected(issuer: IssuerProcess,
                                                        apps: dict[str, str | None],
                                                        over: dict) -> None:
    _, challenge = pkce_pair()
    with issuer.client() as http:
        r = http.get("/authorize", params=_authz_params(APP1, challenge, **over))
    assert r.status_code == 400 and "location" not in r.headers
    assert "text/html" in r.headers["content-type"]


def test_login_form_requires_csrf(issuer: IssuerProcess, apps: dict[str, str | None]) -> None:
    _, challenge = pkce_pair()
    with issuer.client() as http:
        page = http.get("/authorize", params=_authz_params(APP1, challenge))
        fields = _form_fields(page.text) | {"username": "alice", "password": "correct horse"}
        form = {"content-type": "application/x-www-form-urlencoded"}
        # No binding cookie: refused even with the field.
        r = http.post("/authorize", content=urlencode(fields), headers=form)
        assert r.status_code == 403 and "location" not in r.headers
        # Cookie from another page view: the field does not verify against it.
        other = set_cookies(http.get("/authorize", params=_authz_params(APP1, challenge)))
        r = http.post("/authorize", content=urlencode(fields), headers={
            **form, "cookie": f"{names.LOGIN_CSRF}={other[names.LOGIN_CSRF]['value']}"})
        assert r.status_code == 403


def test_login_page_wrong_password_and_escaping(issuer: IssuerProcess,
                                                apps: dict[str, str | None]) -> None:
    _, challenge = pkce_pair()
    with issuer.client() as http:
        r, _ = _sign_in(http, APP1, challenge, password="wrong",
                        state='"><script>alert(1)</script>')
    assert r.status_code == 401
    assert "<script>alert" not in r.text and "Invalid username or password." in r.text


def test_rp_initiated_logout_ends_the_sso_session(issuer: IssuerProcess,
                                                  apps: dict[str, str | None]) -> None:
    with issuer.client() as http:
        verifier, challenge = pkce_pair()
        resp, _ = _sign_in(http, APP1, challenge)
        sid_cookie = f"{names.SESSION}={set_cookies(resp)[names.SESSION]['value']}"
        body = _exchange(http, APP1, _code(resp, APP1, issuer), verifier).json()
        hint = body["id_token"]
        # No hint, a forged hint, an access token as hint, or an unregistered target: nothing
        # happens (logout CSRF and open redirect).
        for params in ({}, {"id_token_hint": hint[:-3] + "AAA"},
                       {"id_token_hint": body["access_token"]},
                       {"id_token_hint": hint, "post_logout_redirect_uri": "https://evil/"}):
            r = http.get("/logout", params=params)
            assert r.status_code == 400 and "location" not in r.headers
        _, c2 = pkce_pair()
        still = http.get("/authorize", params=_authz_params(APP1, c2),
                         headers={"cookie": sid_cookie})
        assert still.status_code == 303  # SSO session alive
        out = http.get("/logout", params={"id_token_hint": hint, "state": "bye",
                                          "post_logout_redirect_uri": APP1[1]},
                       headers={"cookie": sid_cookie})
        assert out.status_code == 303 and out.headers["location"] == APP1[1] + "?state=bye"
        assert set_cookies(out)[names.SESSION]["max-age"] == "0"
        again = http.get("/authorize", params=_authz_params(APP1, c2),
                         headers={"cookie": sid_cookie})
        assert again.status_code == 200 and "Sign in" in again.text  # password asked again
        r = http.post("/token", data={"grant_type": "refresh_token", "client_id": "shop",
                                      "refresh_token": body["refresh_token"]})
        assert r.json()["error"] == "invalid_grant"
