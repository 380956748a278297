"""/metrics on the admin listener: exact counters summed over 2 workers, kept over a reload."""

from __future__ import annotations

import http.client
import json
import signal
import time

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

from tests.admin.support import (
    TOKEN,
    TOKEN_ENV,
    admin_get,
    sample,
    scrape,
    wait_admin,
    with_admin,
)
from tests.gateway.test_jwt_routes import jwks_config, mint

DUR = "wardgate_http_server_request_duration_seconds"


@pytest.fixture(autouse=True)
def _token(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


def _requests(port: int, plan: list[tuple[str, str, dict]]) -> None:
    """One keep-alive connection per request so both workers get a share."""
    for method, path, headers in plan:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request(method, path, headers=headers)
        c.getresponse().read()
        c.close()


@pytest.fixture
def signing_key():
    from cryptography.hazmat.primitives.asymmetric import rsa
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _config(tmp_path, signing_key, upstream):
    cfg = jwks_config(tmp_path, signing_key, upstream, [
        {"name": "orders", "match": {"path_prefix": "/orders"}, "upstream": "up",
         "auth": {"providers": ["main"], "require": {"scopes": ["orders:read"]}}},
        {"name": "public", "match": {"path_prefix": "/public"}, "upstream": "up",
         "auth": "none"},
    ])
    cfg["workers"] = 2
    return with_admin(cfg)


# without an access log, a finished request takes the fused path (GatewayMetrics.finisher):
# its C closure (observe/_finish.c) by default, the Python one with WARDGATE_PURE_PYTHON=1
@pytest.mark.parametrize("access_log,pure", [(True, False), (False, False), (False, True)],
                         ids=["access-log", "no-access-log", "no-access-log-pure-python"])
def test_counters_exact_across_two_workers_and_kept_over_reload(
        upstream, gateway_factory, signing_key, tmp_path, access_log, pure, monkeypatch):
    if pure:
        monkeypatch.setenv("WARDGATE_PURE_PYTHON", "1")
    cfg = _config(tmp_path, signing_key, upstream)
    cfg["access_log"] = {"enabled": access_log}
    gw = gateway_factory(cfg)
    wait_admin(cfg)
    good = {"Authorization": "Bearer " + mint(signing_key)}
    narrow = {"Authorization": "Bearer " + mint(signing_key, scope="other")}
    plan = ([("GET", "/public/x", {})] * 23 + [("POST", "/public/y", {})] * 4
            + [("GET", "/orders/1", good)] * 11 + [("GET", "/orders/1", {})] * 7
            + [("GET", "/orders/1", narrow)] * 3 + [("GET", "/nowhere", {})] * 5)
    _requests(gw.port, plan)
    assert len(set(gw.worker_pids())) == 2

    s = scrape(cfg)
    assert sample(s, DUR + "_count", route="public", method="GET", status_class="2xx") == 23
    assert sample(s, DUR + "_count", route="public", method="POST", status_class="2xx") == 4
    assert sample(s, DUR + "_count", route="orders", method="GET", status_class="2xx") == 11
    assert sample(s, DUR + "_count", route="orders", method="GET", status_class="4xx") == 10
    assert sample(s, DUR + "_count", route="-", method="GET", status_class="4xx") == 5
    assert sample(s, DUR + "_bucket", route="public", method="GET", status_class="2xx",
                  le="+Inf") == 23
    assert sample(s, DUR + "_sum", route="public", method="GET", status_class="2xx") > 0
    auth = "wardgate_auth_decisions_total"
    assert sample(s, auth, route="orders", outcome="ok") == 11
    assert sample(s, auth, route="orders", outcome="no_token") == 7
    assert sample(s, auth, route="orders", outcome="insufficient_scope") == 3
    assert sample(s, "wardgate_upstream_target_healthy", upstream="up", target=upstream.url) == 1
    assert sample(s, "wardgate_config_reloads_total", result="ok") == 0
    assert sample(s, "wardgate_workers") == 2

    # a reload replaces both workers: the old ones' totals stay in the monotonic counters
    old = set(gw.worker_pids())
    gw.signal(signal.SIGHUP)
    gw.wait_event("reloaded")
    deadline = time.monotonic() + 30
    while set(gw.worker_pids()) & old and time.monotonic() < deadline:
        time.sleep(0.1)
    _requests(gw.port, [("GET", "/public/x", {})] * 6)
    s = scrape(cfg)
    assert sample(s, DUR + "_count", route="public", method="GET", status_class="2xx") == 29
    assert sample(s, auth, route="orders", outcome="ok") == 11
    assert sample(s, "wardgate_config_reloads_total", result="ok") == 1
    assert sample(s, "wardgate_workers") == 2


def test_openmetrics_when_asked_and_metrics_auth(upstream, gateway_factory, signing_key,
                                                 tmp_path):
    cfg = _config(tmp_path, signing_key, upstream)
    cfg["admin"]["metrics_auth"] = True
    cfg["workers"] = 1
    gateway_factory(cfg)
    wait_admin(cfg)
    assert admin_get(cfg, "/metrics", token=None)[0] == 401
    assert admin_get(cfg, "/metrics", token="wrong")[0] == 401
    status, headers, body = admin_get(cfg, "/metrics",
                                      accept="application/openmetrics-text; version=1.0.0")
    assert status == 200
    assert headers["content-type"].startswith("application/openmetrics-text")
    names = {f.name for f in om_parse(body.decode())}
    assert "wardgate_auth_decisions" in names
    assert DUR in names


def test_ratelimit_decisions_counted_exactly_across_two_workers(
        upstream, gateway_factory, tmp_path):
    # one local limit (the fused step) and a route with two local limits (the general step)
    cfg = with_admin({
        "workers": 2,
        "upstreams": [{"name": "up", "targets": [upstream.url]}],
        "routes": [
            {"name": "one", "match": {"path_prefix": "/one"}, "upstream": "up", "auth": "none",
             "rate_limits": [{"name": "per-ip", "key": "ip", "rate": "3/h", "burst": 2}]},
            {"name": "two", "match": {"path_prefix": "/two"}, "upstream": "up", "auth": "none",
             "rate_limits": [{"name": "wide", "key": "route", "rate": "100/h",
                              "burst": 50},
                             {"name": "narrow", "key": "header:X-K", "rate": "2/h",
                              "burst": 1}]},
        ]})
    gw = gateway_factory(cfg)
    wait_admin(cfg)
    _requests(gw.port, [("GET", "/one", {})] * 10 + [("GET", "/two", {"X-K": "a"})] * 5)
    assert len(set(gw.worker_pids())) == 2
    s = scrape(cfg)
    rl = "wardgate_ratelimit_decisions_total"
    # local limits are per worker: each worker allows burst + 1 at once (3 on one, 2 on narrow)
    allowed_one = sample(s, rl, route="one", limit="per-ip", result="allowed")
    assert allowed_one + sample(s, rl, route="one", limit="per-ip", result="limited") == 10
    assert 3 <= allowed_one <= 6
    narrow_ok = sample(s, rl, route="two", limit="narrow", result="allowed")
    narrow_no = sample(s, rl, route="two", limit="narrow", result="limited")
    assert narrow_ok + narrow_no == 5 and 2 <= narrow_ok <= 4
    # the wide limit counts only requests the whole set allowed
    assert sample(s, rl, route="two", limit="wide", result="allowed") == narrow_ok
    assert sample(s, DUR + "_count", route="one", method="GET", status_class="4xx") \
        == 10 - allowed_one
    summary = admin_get(cfg, "/admin/summary")
    assert summary[0] == 200
    got = json.loads(summary[2])["ratelimit"]
    assert got["one"]["per-ip"] == {"allowed": allowed_one, "limited": 10 - allowed_one,
                                    "store_error": 0}


@pytest.mark.parametrize("access_log", [True, False], ids=["access-log", "no-access-log"])
def test_recent_denials_over_two_workers(upstream, gateway_factory, signing_key, tmp_path,
                                         access_log):
    cfg = _config(tmp_path, signing_key, upstream)
    cfg["access_log"] = {"enabled": access_log}
    cfg["routes"][1]["rate_limits"] = [{"name": "tiny", "key": "ip", "rate": "1/h"}]
    gw = gateway_factory(cfg)
    wait_admin(cfg)
    narrow = {"Authorization": "Bearer " + mint(signing_key, scope="other")}
    good = {"Authorization": "Bearer " + mint(signing_key)}
    _requests(gw.port, [("GET", "/orders/1", good)] * 5 + [("GET", "/orders/1", {})] * 4
              + [("GET", "/orders/1", narrow)] * 3 + [("GET", "/public/a", {})] * 6
              + [("GET", "/nowhere", {})] * 2)
    got = json.loads(admin_get(cfg, "/admin/denials")[2])
    outcomes = sorted(d["outcome"] for d in got["denials"])
    # 6 public requests over 2 workers with burst 0: each worker allowed one
    limited = 6 - sample(scrape(cfg), "wardgate_ratelimit_decisions_total", route="public",
                         limit="tiny", result="allowed")
    assert limited >= 4
    assert outcomes == sorted(["no_token"] * 4 + ["insufficient_scope"] * 3
                              + ["rate_limited:tiny"] * int(limited))
    assert {d["status"] for d in got["denials"]} == {401, 403, 429}
    scoped = [d for d in got["denials"] if d["outcome"] == "insufficient_scope"]
    assert all(d["sub_hash"] and d["route"] == "orders" for d in scoped)
    assert all(d["client"] == "127.0.0.1" for d in got["denials"])
    times = [d["time"] for d in got["denials"]]
    assert times == sorted(times, reverse=True) and time.time() - times[-1] < 60
    assert got["top_clients"] == [{"client": "127.0.0.1", "count": len(outcomes)}]
    assert len(json.loads(admin_get(cfg, "/admin/denials?limit=2")[2])["denials"]) == 2
    assert admin_get(cfg, "/admin/denials?limit=0")[0] == 422


def test_key_sets_in_metrics_and_admin_providers(upstream, gateway_factory, signing_key,
                                                 tmp_path):
    cfg = _config(tmp_path, signing_key, upstream)
    # a second provider whose JWKS endpoint is down: degraded, its error visible
    cfg["providers"].append({"name": "down", "issuer": "http://127.0.0.1:9/",
                             "audiences": ["api"], "jwks_uri": "http://127.0.0.1:9/jwks",
                             "refresh": {"retry_s": 1}})
    cfg["routes"][0]["auth"]["providers"] = ["main", "down"]
    gateway_factory(cfg)
    wait_admin(cfg)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        provs = {p["name"]: p for p in json.loads(admin_get(cfg, "/admin/providers")[2])
                 ["providers"]}
        if len(provs["main"]["key_sets"]) == 2 and provs["down"]["key_sets"]:
            break
        time.sleep(0.2)
    main = provs["main"]["key_sets"]
    assert len({ks["pid"] for ks in main}) == 2  # each worker reports what it holds
    for ks in main:
        assert ks["keys"] == [{"kid": "k1", "alg": "RS256"}]
        assert 0 <= ks["age_s"] < 60 and ks["last_error"] is None
    body = admin_get(cfg, "/admin/providers")[2].decode()
    assert '"n"' not in body and '"e"' not in body  # no key material
    down = provs["down"]["key_sets"][0]
    assert down["keys"] == [] and down["fetched_at"] is None
    assert down["failures"] >= 1 and "Connect" in down["last_error"]
    s = scrape(cfg)
    assert sample(s, "wardgate_keyset_keys", provider="main") == 1
    assert sample(s, "wardgate_keyset_keys", provider="down") == 0
    assert time.time() - sample(s, "wardgate_keyset_last_success_timestamp_seconds",
                                provider="main") < 60
    assert sample(s, "wardgate_keyset_fetches_total", provider="main", result="load_ok") == 2
    assert sample(s, "wardgate_keyset_fetches_total", provider="down", result="error") >= 2
    summary = {p["name"]: p for p in json.loads(admin_get(cfg, "/admin/summary")[2])
               ["providers"]}
    assert summary["main"]["keys"] == 1 and summary["main"]["kids"] == ["k1"]
    assert summary["down"]["age_s"] is None and summary["down"]["last_error"]
