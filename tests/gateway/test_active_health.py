"""Active health checks through the real gateway, against real upstream servers whose health
endpoint is flipped at run time; and the checker's thresholds, sans-I/O."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from tests.gateway.conftest import plain_config
from wardgate.config import ConfigError, load_gateway
from wardgate.config.gateway import UpstreamConfig
from wardgate.gateway.upstream.active import ActiveChecker
from wardgate.gateway.upstream.cluster import Cluster

# Short enough for quick tests; the timeout leaves a loaded test machine room (a probe that
# times out spuriously twice in a row would take a healthy target out).
ACTIVE = {"path": "/healthz", "interval_s": 0.3, "timeout_s": 0.3, "healthy_threshold": 2,
          "unhealthy_threshold": 2}


def served_by(port: int, n: int) -> list[str]:
    out = []
    for _ in range(n):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/echo")
        r = c.getresponse()
        body = r.read()
        c.close()
        out.append(json.loads(body)["upstream"] if r.status == 200 else str(r.status))
    return out


def events(gw, name: str, target: str | None = None) -> list[dict]:
    found = [json.loads(x) for x in gw.stderr().splitlines() if f'"event":"{name}"' in x]
    return [e for e in found if target is None or e["target"] == target]


def wait_for(gw, name: str, target: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = events(gw, name, target)
        if found:
            return found[0]
        time.sleep(0.05)
    raise TimeoutError(f"no {name} for {target}:\n{gw.stderr()}")


def test_a_failing_health_endpoint_takes_the_target_out_and_back(upstream, upstream_b,
                                                                gateway_factory):
    cfg = plain_config(upstream.url, upstream_b.url)
    cfg["upstreams"][0]["health"] = {"active": ACTIVE}
    gw = gateway_factory(cfg)
    assert sorted(set(served_by(gw.port, 6))) == ["a", "b"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(r.target == "/healthz"
                                                  for r in upstream_b.requests):
        time.sleep(0.05)
    probes = [r for r in upstream_b.requests if r.target == "/healthz"]
    assert probes and probes[0].header("user-agent") == "wardgate-health"
    assert probes[0].header("host") == upstream_b.url.removeprefix("http://")

    upstream_b.health_status = 503
    down = wait_for(gw, "target_down", upstream_b.url)
    assert down["reason"] == "status 503"
    assert set(served_by(gw.port, 8)) == {"a"}  # b answers requests fine, but is out

    upstream_b.health_status = 200
    wait_for(gw, "target_up", upstream_b.url)
    assert sorted(set(served_by(gw.port, 6))) == ["a", "b"]


def test_an_unreachable_target_is_taken_out_and_a_lone_one_gives_503(upstream, gateway_factory):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    cfg = plain_config(upstream.url, dead)
    cfg["upstreams"][0]["health"] = {"active": ACTIVE}
    gw = gateway_factory(cfg)
    assert wait_for(gw, "target_down", dead)["reason"] == "ConnectionRefusedError"
    assert set(served_by(gw.port, 6)) == {"a"}
    # the last healthy target fails its checks too: nothing is left, the answer is 503
    upstream.health_status = 500
    wait_for(gw, "target_down", upstream.url)
    assert served_by(gw.port, 1) == ["503"]


def _checker(**over) -> tuple[ActiveChecker, Cluster]:
    cfg = UpstreamConfig.model_validate({
        "name": "up", "targets": ["http://127.0.0.1:1", "http://127.0.0.1:2"],
        "health": {"active": dict(ACTIVE, **over)}})
    cluster = Cluster(cfg)
    return ActiveChecker(cluster, cfg.health.active), cluster


def test_thresholds_count_probes_in_a_row() -> None:
    checker, cluster = _checker(unhealthy_threshold=3, healthy_threshold=2)
    t = cluster.targets[0]
    for ok in (False, False, True, False, False):  # a pass in between resets the count
        checker.record(t, ok, "x")
    assert t.up
    checker.record(t, False, "x")
    assert not t.up
    assert cluster.pick(0.0) is cluster.targets[1]
    checker.record(t, True, "x")
    checker.record(t, False, "x")
    checker.record(t, True, "x")
    assert not t.up  # passes must be in a row
    checker.record(t, True, "x")
    assert t.up


@pytest.mark.parametrize(("active", "message"), [
    ({"path": "healthz"}, "path"),
    ({"path": "/h", "timeout_s": 5, "interval_s": 1}, "timeout_s must not exceed interval_s"),
    ({"path": "/h", "expect_status": [700]}, "not an HTTP status"),
    ({"path": "/h", "expect_status": []}, "expect_status"),
    ({"path": "/h", "healthy_threshold": 0}, "healthy_threshold"),
])
def test_bad_active_health_config_is_refused(tmp_path, active, message) -> None:
    cfg = plain_config("http://127.0.0.1:9")
    cfg["upstreams"][0]["health"] = {"active": active}
    path = tmp_path / "g.yaml"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError) as err:
        load_gateway(str(path))
    assert message in str(err.value) or any(message in str(i) for i in err.value.issues)
