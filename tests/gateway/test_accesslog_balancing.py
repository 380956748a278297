"""Access log contents and the least-connections balancer, through the real gateway."""

from __future__ import annotations

import http.client
import threading
import time

from tests.gateway.conftest import plain_config


def request(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def test_access_log_one_json_line_per_request_without_secrets(gateway):
    request(gateway.port, "/echo/a?token=supersecret", {
        "Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.c2ln",
        "Cookie": "session=cookiesecret", "X-Request-Id": "req-1"})
    request(gateway.port, "/nothing-here?x=1")
    lines = gateway.access_log(wait_for=2)
    assert len(lines) == 2
    first = lines[0]
    assert first["request_id"] == "req-1"
    assert first["method"] == "GET"
    assert first["path"] == "/echo/a"  # no query string by default
    assert first["route"] == "all"
    assert first["status"] == 200
    assert first["client"] == "127.0.0.1"
    assert first["target"].startswith("http://127.0.0.1:")
    assert first["bytes_out"] > 0 and first["duration_ms"] >= 0
    assert set(first) >= {"time", "bytes_in", "auth"}
    raw = gateway.log_path.read_text()
    for secret in ("supersecret", "eyJhbGciOiJSUzI1NiJ9", "cookiesecret"):
        assert secret not in raw


def test_least_conn_avoids_the_busy_target(upstream, upstream_b, gateway_factory):
    cfg = plain_config(upstream.url, upstream_b.url)
    cfg["upstreams"][0]["balancer"] = "least_conn"
    gw = gateway_factory(cfg)
    # One slow request occupies a target; sequential quick requests all go to the other one
    # (round-robin would alternate between them).
    slow = threading.Thread(target=request, args=(gw.port, "/slow?ms=1500"))
    slow.start()
    deadline = time.monotonic() + 3
    while not (upstream.requests or upstream_b.requests) and time.monotonic() < deadline:
        time.sleep(0.02)
    idle_up = upstream_b if upstream.requests else upstream
    for _ in range(6):
        assert request(gw.port, "/echo") == 200
    slow.join()
    assert [r.target for r in idle_up.requests] == ["/echo"] * 6
