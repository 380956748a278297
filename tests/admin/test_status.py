"""`wardgate status` against a live gateway: the summary in the terminal, --json, the rate,
and one clear line with exit 1/2 for an unreachable listener or a refused token."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys

import pytest

from tests.admin.support import TOKEN, TOKEN_ENV, admin_port, wait_admin, with_admin
from tests.gateway.conftest import plain_config
from tests.support.gateway import free_port
from wardgate.admin.status import render


def wardgate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wardgate", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def traffic(port: int, n: int) -> None:
    for i in range(n):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/echo" if i % 3 else "/status?code=503")
        c.getresponse().read()
        c.close()


@pytest.fixture
def live(upstream, upstream_b, gateway_factory, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    cfg = with_admin(plain_config(upstream.url, upstream_b.url))
    gw = gateway_factory(cfg)
    wait_admin(cfg)
    traffic(gw.port, 9)
    return gw, cfg


def test_status_prints_the_summary(live, upstream, upstream_b):
    gw, cfg = live
    r = wardgate("status", "--config", str(gw.path))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"http://127.0.0.1:{admin_port(cfg)}" in out
    assert "requests     9 in all" in out
    assert "2xx 6  5xx 3" in out  # the status mix
    assert "routes       all" in out and "latency      p50 " in out
    assert f"up       {upstream.url}" in out and f"up       {upstream_b.url}" in out
    assert "detections   none" in out
    assert TOKEN not in out + r.stderr


def test_json_and_rate(live):
    gw, cfg = live
    r = wardgate("status", "--admin", f"http://127.0.0.1:{admin_port(cfg)}", "--json",
                 env={**os.environ, "WARDGATE_ADMIN_TOKEN": TOKEN})
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["requests"] == 9 and got["routes"] == ["all"]
    r = wardgate("status", "-c", str(gw.path), "--interval", "0.3")
    assert r.returncode == 0 and "/s now" in r.stdout, r.stderr


def test_token_file_and_config_token_file(live, tmp_path, monkeypatch):
    gw, cfg = live
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text(TOKEN + "\n")
    bad.write_text("not-the-token\n")
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    url = f"http://127.0.0.1:{admin_port(cfg)}"
    assert wardgate("status", "--admin", url, "--token-file", str(good), env=env).returncode == 0
    r = wardgate("status", "--admin", url, "--token-file", str(bad), env=env)
    assert r.returncode == 2 and "401" in r.stderr and "Traceback" not in r.stderr
    assert "not-the-token" not in r.stderr
    r = wardgate("status", "--admin", url, env=env)  # no token anywhere
    assert r.returncode == 2 and "no admin token" in r.stderr
    r = wardgate("status", "--admin", url, env={**env, "WARDGATE_ADMIN_TOKEN": TOKEN})
    assert r.returncode == 0, r.stderr
    r = wardgate("status", "--admin", url, "--token-file", str(tmp_path / "nope"), env=env)
    assert r.returncode == 2 and "nope" in r.stderr


def test_unreachable_listener_is_exit_1(tmp_path):
    port = free_port()
    r = wardgate("status", "--admin", f"http://127.0.0.1:{port}", "--timeout", "2",
                 env={**os.environ, "WARDGATE_ADMIN_TOKEN": "x"})
    assert r.returncode == 1 and "cannot reach the admin listener" in r.stderr
    assert "Connection refused" in r.stderr and "Traceback" not in r.stderr
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("listen: '127.0.0.1:1'\nupstreams: []\n")
    r = wardgate("status", "--config", str(cfg))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = wardgate("status", "--interval", "-1")
    assert r.returncode == 2 and "between 0 and 3600" in r.stderr


def test_status_loads_no_web_framework():
    code = ("import sys, wardgate.cli, wardgate.admin.status; wardgate.cli.build_parser(); "
            "print([m for m in ('fastapi', 'starlette', 'uvicorn', 'httpx') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_render_marks_a_down_target_and_detections():
    s = {"requests": 3, "workers": 2, "latency_s": {"p50": 0.005, "p95": 0.25, "p99": 2.5},
         "status": {"r": {"2xx": 2, "4xx": 1}}, "routes": ["r"], "auth": {"ok": 2},
         "upstreams": [{"name": "u", "balancer": "round_robin", "targets": [
             {"url": "http://a", "healthy": True}, {"url": "http://b", "healthy": False},
             {"url": "http://c", "healthy": None}]}],
         "providers": [{"name": "p", "keys": 2, "kids": ["k1", "k2"], "age_s": 4000,
                        "last_error": None}],
         "ratelimit": {"r": {"ip": {"allowed": 5, "limited": 4, "store_error": 0}}},
         "top_refused": [{"client": "10.0.0.1", "count": 7}], "time": 0}
    out = render(s, "http://x", rate=1.25)
    for needle in ("3 in all   1.2/s now", "p50 5 ms  p95 250 ms  p99 2.5 s", "DOWN     http://b",
                   "unknown  http://c", "2 keys (k1, k2)  age 67 min", "r/ip 4",
                   "10.0.0.1 (7)", "detections   none", "auth         ok 2"):
        assert needle in out, (needle, out)
    assert "detections   {\"x\": 1}" in render({**s, "detections": {"x": 1}}, "http://x")
