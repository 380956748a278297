"""Browser mode: __Host- cookies, refresh cookie on its own path, CSRF on every cookie call."""

from __future__ import annotations

import httpx

from tests.issuer.support import IssuerProcess, set_cookies
from wardgate.issuer import cookies as names


def _cookie_login(issuer: IssuerProcess, http: httpx.Client) -> httpx.Response:
    r = issuer.login(http, "alice", "correct horse", mode="cookie")
    assert r.status_code == 200, r.text
    return r


def _header(jar: dict[str, dict[str, str]], *cookie_names: str) -> str:
    return "; ".join(f"{n}={jar[n]['value']}" for n in cookie_names)


def test_cookie_login_sets_hardened_cookies(issuer: IssuerProcess) -> None:
    with issuer.client() as http:
        r = _cookie_login(issuer, http)
    body = r.json()
    assert "access_token" not in body and "refresh_token" not in body
    jar = set_cookies(r)
    assert set(jar) == {names.ACCESS, names.REFRESH, names.CSRF, names.SESSION}
    for name, attrs in jar.items():
        assert "secure" in attrs and attrs["samesite"].lower() == "lax"
        assert "domain" not in attrs
        if name.startswith("__Host-"):
            assert attrs["path"] == "/"
    for name in (names.ACCESS, names.REFRESH, names.SESSION):
        assert "httponly" in jar[name]
    assert "httponly" not in jar[names.CSRF]  # the page's script must read it
    assert jar[names.REFRESH]["path"] == names.REFRESH_PATH
    assert jar[names.CSRF]["value"] == body["csrf_token"]
    assert issuer.verify(jar[names.ACCESS]["value"])["roles"] == ["reader"]


def test_cookie_refresh_needs_csrf(issuer: IssuerProcess) -> None:
    with issuer.client() as http:
        jar = set_cookies(_cookie_login(issuer, http))
        cookie = _header(jar, names.REFRESH, names.CSRF)
        csrf = jar[names.CSRF]["value"]
        for headers in ({"cookie": cookie},
                        {"cookie": cookie, "x-csrf-token": "forged.value"},
                        {"cookie": _header(jar, names.REFRESH), "x-csrf-token": csrf}):
            r = http.post(names.REFRESH_PATH, headers=headers)
            assert r.status_code == 403 and r.json()["error"] == "csrf_failed"
        ok = http.post(names.REFRESH_PATH, headers={"cookie": cookie, "x-csrf-token": csrf})
        assert ok.status_code == 200, ok.text
        new = set_cookies(ok)
        assert new[names.REFRESH]["value"] != jar[names.REFRESH]["value"]
        assert issuer.verify(new[names.ACCESS]["value"])["sub"]
        # The rotated cookie replayed: reuse, family revoked.
        again = http.post(names.REFRESH_PATH, headers={"cookie": cookie, "x-csrf-token": csrf})
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_csrf_token_of_another_session_fails(issuer: IssuerProcess) -> None:
    with issuer.client() as http:
        mine = set_cookies(_cookie_login(issuer, http))
        theirs = set_cookies(_cookie_login(issuer, http))
        forged = theirs[names.CSRF]["value"]
        r = http.post(names.REFRESH_PATH, headers={
            "cookie": f"{names.REFRESH}={mine[names.REFRESH]['value']}; {names.CSRF}={forged}",
            "x-csrf-token": forged})
        assert r.status_code == 403


def test_cookie_logout_needs_csrf_and_clears_cookies(issuer: IssuerProcess) -> None:
    with issuer.client() as http:
        jar = set_cookies(_cookie_login(issuer, http))
        cookie = _header(jar, names.ACCESS, names.SESSION, names.CSRF)
        denied = http.post("/logout", headers={"cookie": cookie})
        assert denied.status_code == 403
        ok = http.post("/logout", headers={"cookie": cookie,
                                           "x-csrf-token": jar[names.CSRF]["value"]})
        assert ok.status_code == 200
        cleared = set_cookies(ok)
        assert all(cleared[n]["value"] in ("", '""') and cleared[n]["max-age"] == "0"
                   for n in (names.ACCESS, names.REFRESH, names.CSRF, names.SESSION))
        r = http.post(names.REFRESH_PATH, headers={
            "cookie": _header(jar, names.REFRESH, names.CSRF),
            "x-csrf-token": jar[names.CSRF]["value"]})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_same_site_is_configurable_and_browser_mode_can_be_off(make_issuer) -> None:  # type: ignore[no-untyped-def]
    strict = make_issuer(start=False, browser={"same_site": "Strict"})
    strict.add_user("u", "pw-strict", [])
    strict.start()
    with strict.client() as http:
        r = strict.login(http, "u", "pw-strict", mode="cookie")
    assert all(a["samesite"].lower() == "strict" for a in set_cookies(r).values())
    off = make_issuer(start=False, browser={"enabled": False})
    off.add_user("u", "pw-off", [])
    off.start()
    with off.client() as http:
        assert off.login(http, "u", "pw-off", mode="cookie").status_code == 400
        assert http.post(names.REFRESH_PATH).status_code == 400
