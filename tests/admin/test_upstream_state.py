"""Upstream resilience on the admin listener: per-target durations in /metrics, ejections
counted, and each worker's breaker and target states in GET /admin/upstreams."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from tests.admin.support import TOKEN, TOKEN_ENV, admin_get, sample, scrape, wait_admin, with_admin
from tests.gateway.conftest import plain_config

UP_DUR = "wardgate_upstream_request_duration_seconds"


@pytest.fixture(autouse=True)
def _token(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


def _get(port: int, n: int) -> list[int]:
    out = []
    for _ in range(n):  # a connection each, so both workers get a share
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/x")
        r = c.getresponse()
        r.read()
        out.append(r.status)
        c.close()
    return out


def _until(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_failing_target_is_ejected_and_shown_per_worker(upstream, upstream_b, gateway_factory):
    upstream_b.force_status = 503
    cfg = plain_config(upstream.url, upstream_b.url)
    cfg["upstreams"][0]["health"] = {"max_failures": 2, "ejection_s": 30}
    cfg["upstreams"][0]["circuit_breaker"] = {"max_requests": 50}
    cfg["workers"] = 2
    cfg = with_admin(cfg)
    gw = gateway_factory(cfg)
    wait_admin(cfg)
    statuses = _get(gw.port, 40)
    # each worker sent b at most two requests before ejecting it; a took the rest
    assert statuses.count(503) == len(upstream_b.requests) <= 4
    assert statuses.count(200) == len(upstream.requests) >= 36

    def ejected():
        # the per-worker view (published by each worker's sweeper) and the scrape (which asks
        # every worker to publish) must agree: a worker that ejected b a moment ago may show
        # in one before the other
        body = json.loads(admin_get(cfg, "/admin/upstreams")[2])
        up = body["upstreams"][0]
        b = next(t for t in up["targets"] if t["url"] == upstream_b.url)
        n = sum(w["state"] == "ejected" for w in b["workers"])
        agreed = sample(scrape(cfg), "wardgate_upstream_target_ejections_total", upstream="up",
                        target=upstream_b.url) == n
        return up if b["state"] == "ejected" and len(up["breaker"]["workers"]) == 2 \
            and agreed else None

    up = _until(ejected)
    assert up, admin_get(cfg, "/admin/upstreams")[2]
    assert up["breaker"]["limits"] == {"max_requests": 50, "max_pending": 1024}
    assert {w["active"] for w in up["breaker"]["workers"]} == {0}
    b = next(t for t in up["targets"] if t["url"] == upstream_b.url)
    assert {w["pid"] for w in b["workers"]} == set(gw.worker_pids())
    hit = [w for w in b["workers"] if w["state"] == "ejected"]
    assert hit and all(w["ejected_for_s"] > 20 and w["ejections"] == 1 for w in hit)
    a = next(t for t in up["targets"] if t["url"] == upstream.url)
    assert a["state"] == "healthy" and a["healthy"] is True

    s = scrape(cfg)
    assert sample(s, UP_DUR + "_count", upstream="up", target=upstream.url) == len(
        upstream.requests)
    assert sample(s, UP_DUR + "_count", upstream="up", target=upstream_b.url) == len(
        upstream_b.requests)
    assert sample(s, UP_DUR + "_bucket", upstream="up", target=upstream.url, le="+Inf") == len(
        upstream.requests)
    assert sample(s, "wardgate_upstream_target_ejections_total", upstream="up",
                  target=upstream_b.url) == len(hit)
    assert sample(s, "wardgate_upstream_target_ejections_total", upstream="up",
                  target=upstream.url) == 0
    assert sample(s, "wardgate_upstream_overflow_total", upstream="up", limit="max_requests") == 0
    assert ("wardgate_upstream_retries_total",
            (("result", "denied"), ("upstream", "up"))) in s
    # nothing about the upstreams without the token
    assert admin_get(cfg, "/admin/upstreams", token=None)[0] == 401
