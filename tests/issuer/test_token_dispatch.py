"""POST /token is answered ahead of FastAPI's middleware stack (`app.IssuerApp`).

Its answers, errors included, must be those the stack would give: the same size limit, the
same exception handlers. Driven in-process through httpx's ASGI transport.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from tests.issuer.support import base_config
from wardgate.config.issuer import IssuerConfig
from wardgate.issuer import admin, forms, grants
from wardgate.issuer.app import IssuerApp, create_app

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[IssuerApp]:
    cfg = IssuerConfig(**base_config(tmp_path, keys={"algorithm": "EdDSA"}))
    await admin.add_user(cfg, "alice", "wonderland", ["reader"])
    a = create_app(cfg)
    assert isinstance(a, IssuerApp)
    async with a.router.lifespan_context(a):
        yield a


def _count_dispatch(app: IssuerApp, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    direct = app._token

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await direct(scope, receive, send)

    monkeypatch.setattr(app, "_token", counted)
    return seen


def _client(app: IssuerApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app, raise_app_exceptions=False,
                                                           client=("127.0.0.1", 5555)),
                             base_url="http://127.0.0.1")


async def _refresh_token(http: httpx.AsyncClient) -> str:
    r = await http.post("/login", json={"username": "alice", "password": "wonderland"})
    assert r.status_code == 200, r.text
    return str(r.json()["refresh_token"])


async def test_refresh_grant_through_the_dispatch(app: IssuerApp,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _count_dispatch(app, monkeypatch)
    async with _client(app) as http:
        tok = await _refresh_token(http)
        r = await http.post("/token", data={"grant_type": "refresh_token", "refresh_token": tok})
        assert r.status_code == 200
        assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
        assert r.json()["refresh_token"] != tok and r.json()["scope"] == "orders:read"
        # Reuse of the rotated token: the handlers' invalid_grant, as through the stack.
        r = await http.post("/token", data={"grant_type": "refresh_token", "refresh_token": tok})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        # Other methods on the path still go through the stack (405 from its handler).
        r = await http.get("/token")
        assert r.status_code == 405 and r.json()["error"]
    assert seen == ["/token", "/token"]


async def test_declared_oversize_body_is_413_before_reading(app: IssuerApp) -> None:
    limit = app.state.issuer.cfg.limits.max_body_bytes
    async with _client(app) as http:
        r = await http.post("/token", content=b"x" * (limit + 1),
                            headers={"content-type": "application/x-www-form-urlencoded"})
        direct = r.status_code, r.json()
        r = await http.post("/login", content=b"x" * (limit + 1),
                            headers={"content-type": "application/json"})
        assert direct == (r.status_code, r.json()) and r.status_code == 413
        r = await http.post("/token", content=b"grant_type=x",
                            headers={"content-type": "application/x-www-form-urlencoded",
                                     "content-length": "12abc"})
        assert r.status_code == 413


@pytest.mark.parametrize("telemetry", [False, True])
async def test_errors_answer_as_the_stack_does(app: IssuerApp, telemetry: bool,
                                               monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """Database errors are 503, anything unexpected a logged 500: with the dispatch, and with
    telemetry configured (which takes the full stack)."""
    monkeypatch.setattr(app._native_telemetry, "enabled", lambda: telemetry)
    seen = _count_dispatch(app, monkeypatch)
    calls = 0

    async def broken_db(*_a: Any, **_k: Any) -> Any:
        nonlocal calls
        calls += 1
        raise OperationalError("UPDATE", None, Exception("disk I/O error"))

    async with _client(app) as http:
        tok = await _refresh_token(http)
        form = {"grant_type": "refresh_token", "refresh_token": tok}
        monkeypatch.setattr(grants, "refresh_grant", broken_db)
        r = await http.post("/token", data=form)
        assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"

        async def bug(*_a: Any, **_k: Any) -> Any:
            raise RuntimeError("a bug")

        monkeypatch.setattr(forms, "form", bug)
        with caplog.at_level(logging.ERROR, logger="wardgate.issuer"):
            r = await http.post("/token", data=form)
        assert r.status_code == 500 and r.json()["error"] == "server_error"
        assert "unexpected error" in caplog.text
    assert calls == 1 and len(seen) == (0 if telemetry else 2)
