"""The admin API: every endpoint refuses without the token, answers with it, leaks no secret."""

from __future__ import annotations

import json

import pytest

from tests.admin.support import TOKEN, TOKEN_ENV, admin_get, admin_json, wait_admin, with_admin
from tests.gateway.conftest import plain_config

ENDPOINTS = [("GET", "/admin/routes"), ("GET", "/admin/upstreams"), ("GET", "/admin/providers"),
             ("GET", "/admin/config"), ("GET", "/admin/workers"), ("GET", "/admin/summary"),
             ("GET", "/admin/denials"),
             ("POST", "/admin/reload")]
REDIS_PASSWORD = "s3cret-redis-pass"


@pytest.fixture
def admin_gateway(upstream, gateway_factory, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    cfg = with_admin(plain_config(upstream.url))
    cfg["state"] = {"redis_url": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"}
    gw = gateway_factory(cfg)
    wait_admin(cfg)
    return gw, cfg


def test_every_endpoint_401_without_token_200_with(admin_gateway):
    _, cfg = admin_gateway
    for method, path in ENDPOINTS:
        for bad in (None, "wrong-token", TOKEN + "x"):
            status, headers, _ = admin_get(cfg, path, token=bad, method=method)
            assert status == 401, (path, bad)
            assert headers["www-authenticate"].startswith("Bearer")
        status, _, body = admin_get(cfg, path, method=method)
        assert status == 200, (path, body)
        assert TOKEN.encode() not in body
        assert REDIS_PASSWORD.encode() not in body


def test_routes_upstreams_config_and_reload(admin_gateway, upstream):
    _, cfg = admin_gateway
    assert [r["name"] for r in admin_json(cfg, "/admin/routes")["routes"]] == ["all"]
    ups = admin_json(cfg, "/admin/upstreams")["upstreams"]
    [t] = ups[0]["targets"]
    assert (t["url"], t["weight"], t["healthy"]) == (upstream.url, 1, True)
    assert t["state"] in ("healthy", None)  # None until the worker's first status write
    running = admin_json(cfg, "/admin/config")["config"]
    assert running["admin"]["token_env"] == TOKEN_ENV  # where the token lives, not the token
    assert "<redacted>@127.0.0.1:6379" in running["state"]["redis_url"]
    got = admin_json(cfg, "/admin/reload", method="POST")
    assert got["result"] == "ok" and got["generation"] == 1
    spec = json.loads(admin_get(cfg, "/admin/openapi.json", token=None)[2])
    assert "/admin/reload" in spec["paths"]


def test_no_token_configured_refuses_everyone(upstream, gateway_factory, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    cfg = with_admin(plain_config(upstream.url))
    gw = gateway_factory(cfg)
    wait_admin(cfg)
    assert "admin_token_missing" in gw.stderr()
    for token in (None, "", "anything"):
        assert admin_get(cfg, "/admin/routes", token=token)[0] == 401
    assert admin_get(cfg, "/metrics", token=None)[0] == 200  # open by default


def test_workers_do_not_import_the_admin_framework():
    import subprocess
    import sys
    code = ("import sys, wardgate.gateway.worker, wardgate.gateway.supervisor; "
            "bad = [m for m in ('fastapi', 'starlette', 'uvicorn', 'wardgate.admin.app') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stdout + got.stderr


def test_check_config_warns_without_admin_token(tmp_path, monkeypatch):
    import subprocess
    import sys

    import yaml
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(with_admin(plain_config("http://127.0.0.1:9"))))
    got = subprocess.run([sys.executable, "-m", "wardgate", "check-config", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 0
    assert "no token configured" in got.stderr
