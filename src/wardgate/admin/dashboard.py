"""The dashboard at the admin listener's `/`: a login form for the admin token, the page, and
its script and style, all package data (no CDN, no build step; works offline).

The page is static HTML; dashboard.js polls /admin/summary and /admin/denials with the session
cookie set by POST /login. No inline script or style anywhere, so the Content-Security-Policy
allows only files from this listener.
"""

from __future__ import annotations

import html
import time
from collections.abc import Awaitable, Callable
from importlib.resources import files

from fastapi import APIRouter, FastAPI, Form, Request, Response
from fastapi.responses import RedirectResponse

from wardgate.admin.auth import COOKIE, Sessions, request_authorized, token_ok
from wardgate.admin.view import AdminView

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
_STATIC_TYPES = {"dashboard.js": "text/javascript; charset=utf-8",
                 "dashboard.css": "text/css; charset=utf-8",
                 "favicon.svg": "image/svg+xml"}
_ERRORS = {"bad": "That is not the admin token.",
           "unset": "No admin token is configured (admin.token_env or admin.token_file)."}


def _load(name: str) -> bytes:
    return files("wardgate.admin").joinpath("static", name).read_bytes()


def add_security_headers(app: FastAPI) -> None:
    """Every answer of the admin listener carries the headers (the API's JSON too)."""

    @app.middleware("http")
    async def _headers(request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response


def _page(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="text/html; charset=utf-8",
                    headers={"cache-control": "no-store"})


def build_dashboard(view: AdminView, sessions: Sessions) -> APIRouter:
    # read once at start-up: the files are part of the installed package
    static = {name: _load(name) for name in _STATIC_TYPES}
    dashboard_html = _load("dashboard.html")
    login_html = _load("login.html").decode()
    router = APIRouter(include_in_schema=False)

    def login_page(error: str | None, status: int = 200) -> Response:
        msg = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        return _page(login_html.replace("<!--error-->", msg).encode(), status)

    @router.get("/")
    def index(request: Request) -> Response:
        if request_authorized(request, view.token(), sessions, time.time()):
            return _page(dashboard_html)
        return login_page(None)

    @router.post("/login")
    def login(token: str = Form("", max_length=4096)) -> Response:
        expected = view.token()
        if expected is None:
            return login_page(_ERRORS["unset"], 401)
        if not token_ok(expected, token.strip().encode()):
            return login_page(_ERRORS["bad"], 401)
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(COOKIE, sessions.issue(expected, time.time()),
                        max_age=sessions.max_age_s, path="/", httponly=True,
                        samesite="strict")
        return resp

    @router.post("/logout")
    def logout() -> Response:
        resp = RedirectResponse("/", status_code=303)
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return resp

    @router.get("/favicon.ico")
    def favicon() -> Response:  # browsers ask for it whatever the page says
        return Response(static["favicon.svg"], media_type=_STATIC_TYPES["favicon.svg"])

    @router.get("/static/{name}")
    def asset(name: str) -> Response:
        body = static.get(name)
        if body is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(body, media_type=_STATIC_TYPES[name],
                        headers={"cache-control": "no-cache"})

    return router
