"""Browser-mode cookies. Names and attributes are a contract with the gateway (docs/issuer.md).

`__Host-` (RFC 6265bis §4.1.3.2): Secure, Path=/, no Domain, so no sibling host or plain-http
page can set or shadow it. The refresh cookie must be scoped to the refresh path, which
`__Host-` forbids, so it uses `__Secure-` and `Path=REFRESH_PATH`.
"""

from __future__ import annotations

from starlette.responses import Response

ACCESS = "__Host-wg_at"
REFRESH = "__Secure-wg_rt"
CSRF = "__Host-wg_csrf"
SESSION = "__Host-wg_sid"
LOGIN_CSRF = "__Host-wg_lc"
REFRESH_PATH = "/session/refresh"


def _set(resp: Response, name: str, value: str, max_age: int, same_site: str, *,
         http_only: bool = True, path: str = "/") -> None:
    resp.set_cookie(name, value, max_age=max_age, path=path, secure=True, httponly=http_only,
                    samesite=same_site.lower())  # type: ignore[arg-type]


def set_login(resp: Response, *, access: str, access_ttl: int, refresh: str | None,
              refresh_ttl: int, csrf: str, session: str | None, session_ttl: int,
              same_site: str) -> None:
    _set(resp, ACCESS, access, access_ttl, same_site)
    if refresh is not None:
        _set(resp, REFRESH, refresh, refresh_ttl, same_site, path=REFRESH_PATH)
    # Readable by the page's script: that is the point of double-submit.
    _set(resp, CSRF, csrf, session_ttl, same_site, http_only=False)
    if session is not None:
        _set(resp, SESSION, session, session_ttl, same_site)


def clear_all(resp: Response, same_site: str) -> None:
    for name, path in ((ACCESS, "/"), (REFRESH, REFRESH_PATH), (CSRF, "/"), (SESSION, "/")):
        _set(resp, name, "", 0, same_site, path=path, http_only=name != CSRF)
