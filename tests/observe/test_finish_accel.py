"""The finished-request closure in C (observe/_finish.c) against the Python one it stands in
for (GatewayMetrics.finisher): the same requests must leave the same numbers in every slot,
hand the same refusals to the denials ring and the same items to the detector."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest

from wardgate.detect.adapter import buffered
from wardgate.gateway.request import Request
from wardgate.observe import http
from wardgate.observe.http import GatewayMetrics
from wardgate.observe.registry import MetricRegistry

TARGETS = ("http://127.0.0.1:9001", "http://127.0.0.1:9002")
METHODS = ("GET", "POST", "DELETE", "PROPFIND", "get")
STATUSES = (101, 200, 204, 302, 400, 401, 403, 404, 429, 499, 500, 502, 503, 599, 600, 0)
OUTCOMES = ("-", "ok", "no_token", "bad_signature", "dpop_replayed", "made_up")


def test_the_c_closure_is_built_here() -> None:
    # `make test` installs gcc and Python's headers (make sysdeps): CI must test both
    assert http._CFinisher is not None, "wardgate.observe._finish was not built"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _metrics() -> tuple[GatewayMetrics, list[Any]]:
    cluster = SimpleNamespace(name="up", targets=[SimpleNamespace(url=u) for u in TARGETS])
    routes = [SimpleNamespace(name="api", auth=object(), cluster=cluster, observed=True),
              SimpleNamespace(name="open", auth=None, cluster=cluster, observed=False),
              SimpleNamespace(name="lone", auth=object(), cluster=None, observed=True)]
    gm = GatewayMetrics(MetricRegistry())
    gm.declare(routes, [cluster])
    gm.registry.freeze()
    gm.bind()
    return gm, routes


def _plan(seed: int, n: int) -> list[tuple[Any, ...]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        out.append((rnd.randrange(4), rnd.choice(METHODS), rnd.choice(STATUSES),
                    rnd.choice(OUTCOMES), rnd.choice((*TARGETS, "-", "http://other:1")),
                    rnd.choice((0, 0, 17, 10**12)), rnd.choice((0, 2, 65536)),
                    rnd.choice((0.0, 999.9995, 999.9, 990.0, 400.0)), f"/p/{i % 7}",
                    rnd.random() < 0.3))
    return out


def _run(accelerated: bool, plan: list[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    gm, routes = _metrics()
    clock = Clock()
    refused: list[tuple[str, int]] = []
    observed: list[tuple[Any, ...]] = []
    expected: list[tuple[Any, ...]] = []
    done = gm.finisher(clock, lambda req, status: refused.append((req.path, status)),
                       observed.append, accelerated=accelerated)
    assert (type(done).__name__ == "Finisher") is accelerated
    for ri, method, status, outcome, target, b_in, b_out, start, path, retried in plan:
        req = Request()
        req.route = None if ri == 3 else routes[ri]
        req.method, req.auth_outcome, req.start, req.path = method, outcome, start, path
        req.client_ip = "10.0.0.1"
        req.headers = [(b"user-agent", b"t/1")]
        if retried:
            done(req, status, b_in, b_out, target, "upstream_reset", "connect_error")
        else:
            done(req, status, b_in, b_out, target, None)
        if req.route is not None and req.route.observed:
            expected.append(buffered(req, status, b_out))
        clock.now += 0.00025
    # both closures build the detector's item inline: the layout wardgate.detect reads
    assert observed == expected
    # the detector's items, with the route and the request's lists by value
    items = [(it[0].name, *it[1:]) for it in observed]
    return list(gm.values), refused, items


@pytest.mark.skipif(http._CFinisher is None, reason="the C closure is not built")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_c_and_python_leave_the_same_numbers(seed: int) -> None:
    plan = _plan(seed, 3000)
    py_values, py_refused, py_items = _run(False, plan)
    c_values, c_refused, c_items = _run(True, plan)
    assert c_values == py_values
    assert [type(v) for v in c_values] == [type(v) for v in py_values]  # float sums stay float
    assert c_refused == py_refused and c_items == py_items
    assert sum(1 for v in py_values if v) > 50  # the plan touched many slots
    assert py_refused and py_items


@pytest.mark.skipif(http._CFinisher is None, reason="the C closure is not built")
def test_c_closure_refuses_what_python_would_refuse() -> None:
    gm, routes = _metrics()
    done = gm.finisher(Clock(), lambda req, status: None, None, accelerated=True)
    req = Request()
    req.route, req.start = routes[0], 999.0
    with pytest.raises(TypeError):
        done(req, 200, 0, 0)  # too few arguments
    with pytest.raises(TypeError):
        done(req, 200, 0, 0, "-", None, retried="x")
    with pytest.raises(TypeError):
        done(req, "200", 0, 0, "-", None)
    req.route = SimpleNamespace(metric_id=99, observed=False)
    with pytest.raises(IndexError):
        done(req, 200, 0, 0, "-", None)
    before = list(gm.values)
    req.route = routes[0]
    done(req, 200, 0, 5, "-", None)
    assert gm.values != before  # still working after the errors
