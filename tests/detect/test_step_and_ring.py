"""The compiled route step on real Request and Identity objects (sans-I/O), and the
detections ring the admin API reads."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from wardgate.auth.identity import Identity
from wardgate.config import load_gateway
from wardgate.detect.adapter import buffered
from wardgate.detect.events import ua_hash
from wardgate.detect.flags import Flags
from wardgate.detect.step import compile_step
from wardgate.detect.verdict import KEY_JTI, KEY_NET, KEY_SUB, Finding
from wardgate.errors import DetectionDenied, StepUpRequired, render
from wardgate.gateway.request import Request
from wardgate.gateway.runtime import Runtime
from wardgate.observe.detections import CAPACITY, DetectionRing, collect


def request(jti: str = "j1", sub: str = "alice", ip: str = "10.0.0.5", start: float = 100.0
            ) -> Request:
    req = Request()
    req.client_ip = ip
    req.start = start
    req.identity = Identity("main", {"sub": sub, "jti": jti}, b"", ("roles",), None, 1e12)
    return req


def finding(kind: str = "token_replay", key_type: str = KEY_JTI, key: str = "j1") -> Finding:
    return Finding(kind, 1.5, key_type, key, {}, "why")


def test_log_compiles_no_step() -> None:
    assert compile_step(Flags(16), "log", "X-Wardgate-Risk", [None, 0]) is None


@pytest.mark.parametrize(("key_type", "key"), [(KEY_JTI, "j1"), (KEY_SUB, "alice"),
                                               (KEY_NET, "10.0.0.0/24")])
def test_deny_refuses_what_is_flagged_until_it_expires(key_type: str, key: str) -> None:
    flags = Flags(16)
    values = [0, 0]
    step = compile_step(flags, "deny", "X-Wardgate-Risk", [values, 1])
    assert step is not None
    step(request())  # nothing flagged
    flags.set(key_type, key, 150.0, finding(key_type=key_type, key=key))
    with pytest.raises(DetectionDenied) as exc:
        step(request())
    assert exc.value.status == 403 and values[1] == 1
    step(request(jti="j2", sub="bob", ip="10.9.0.1"))  # someone else
    step(request(start=151.0))  # expired
    assert values[1] == 1


def test_step_up_is_rfc9470() -> None:
    flags = Flags(16)
    step = compile_step(flags, "step_up", "X-Wardgate-Risk", [None, 0])
    assert step is not None
    flags.set(KEY_JTI, "j1", 150.0, finding())
    req = request()
    with pytest.raises(StepUpRequired) as exc:
        step(req)
    assert req.auth_outcome == "step_up"
    err = exc.value
    err.realm = "api"
    wire = render(err, request_id=b"r1", server=b"wardgate", keep_alive=True)
    assert wire.startswith(b"HTTP/1.1 401 ")
    assert b'WWW-Authenticate: Bearer realm="api", error="insufficient_user_authentication"' \
        in wire


def test_header_goes_with_the_upstream_lines_and_keeps_the_fields_list() -> None:
    flags = Flags(16)
    step = compile_step(flags, "header", "X-Wardgate-Risk", [None, 0])
    assert step is not None
    flags.set(KEY_SUB, "alice", 150.0, finding("rate", KEY_SUB, "alice"))
    req = request()
    fields = req.headers
    step(req)
    assert req.trace_line == b"\r\nX-Wardgate-Risk: 1.50;kind=rate"
    assert req.headers is fields


def test_a_flag_is_extended_never_shortened_and_the_table_is_bounded() -> None:
    flags = Flags(16)
    flags.set(KEY_JTI, "j1", 200.0, finding())
    flags.set(KEY_JTI, "j1", 150.0, finding())
    assert flags.jti["j1"].until == 200.0
    for i in range(100):
        flags.set(KEY_JTI, f"x{i}", 200.0, finding(key=f"x{i}"))
    assert len(flags.jti) <= 16


def test_ring_newest_first_over_workers_and_bounded(tmp_path: Path) -> None:
    a, b = DetectionRing(str(tmp_path), "worker-1"), DetectionRing(str(tmp_path), "worker-2")
    for i in range(CAPACITY + 10):
        a.add({"time": float(i), "kind": "rate", "features": {"n": i}})
    b.add({"time": 1e9, "kind": "token_replay", "features": {}})
    got = collect(str(tmp_path), limit=1024)
    assert len(got) == CAPACITY + 1
    assert got[0]["kind"] == "token_replay" and got[1]["time"] == CAPACITY + 9
    a.add({"time": 2e9, "kind": "rate", "features": {"blob": "x" * 5000}})
    top = collect(str(tmp_path), limit=1)[0]
    assert top["time"] == 2e9 and top["features"] == {} and top["truncated"] is True
    a.close()
    b.close()


def _runtime(tmp_path: Path) -> Runtime:
    cfg = {
        "providers": [{"name": "main", "issuer": "https://iss.example", "audiences": ["api"],
                       "jwks_file": str(tmp_path / "jwks.json")}],
        "upstreams": [{"name": "up", "targets": ["http://127.0.0.1:9"]}],
        "routes": [{"name": "api", "match": {"path_prefix": "/api"}, "upstream": "up",
                    "auth": {"providers": ["main"]}},
                   {"name": "quiet", "match": {"path_prefix": "/quiet"}, "upstream": "up",
                    "auth": {"providers": ["main"]}, "detection": {"action": "log"}}],
        "detection": {"action": "deny", "deny_s": 5},
    }
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(cfg))
    return Runtime(load_gateway(str(tmp_path / "g.yaml")))


def test_a_routes_step_is_in_place_only_while_something_is_flagged(tmp_path: Path) -> None:
    """The pipeline calls a route's detection step only while a flag is held (flags.py arms
    and disarms it), and a flag set while armed is enforced at once."""
    rt = _runtime(tmp_path)
    api, quiet = rt.routes
    flags = rt.detection.detector.flags
    assert api.observed and quiet.observed
    assert api.detect is None and quiet.detect is None  # nothing flagged: no call at all
    flags.set(KEY_JTI, "j1", 150.0, finding())
    assert api.detect is not None and quiet.detect is None  # `log` enforces nothing
    with pytest.raises(DetectionDenied):
        api.detect(request())
    assert flags.sweep(120.0) == 0 and api.detect is not None
    assert flags.sweep(151.0) == 1 and api.detect is None


async def test_a_backlog_is_worked_off_in_slices_and_all_of_it_counts(tmp_path: Path) -> None:
    """One detector run takes a bounded slice of the buffer (the worker serves requests in
    between); the running task works the rest off, and stop() drains what is left."""
    rt = _runtime(tmp_path)
    det = rt.detection

    def buffer(n: int, prefix: str) -> None:
        for i in range(n):
            req = request(jti=f"{prefix}{i}", ip=f"10.0.{i % 200}.1")
            req.route = rt.routes[0]
            det.buf.append(buffered(req, 200, 10))

    buffer(2_500, "j")
    det.tick(100.0)
    assert len(det.buf) == 1_500  # one slice
    det.start(asyncio.get_running_loop())
    for _ in range(100):
        if not det.buf:
            break
        await asyncio.sleep(0.05)
    assert not det.buf
    buffer(1_500, "k")  # more than one slice, and the task gets no turn before stop()
    await det.stop()
    assert not det.buf


def test_a_burst_is_one_event_and_user_agents_stay_apart(tmp_path: Path) -> None:
    """The tick folds a client's identical requests into one event counted that many times;
    another user agent, path or status starts a new event. What the request path buffered
    holds the request's fields, not the request."""
    rt = _runtime(tmp_path)
    det = rt.detection
    seen: list[tuple[Any, int]] = []
    det.detector.observe = lambda ev, n: seen.append((ev, n)) or []
    ident = request().identity  # one token: the verified-token cache hands out one identity

    def finished(path: str = "/api/a", ua: bytes = b"app/1", status: int = 200,
                 accept: bytes = b"*/*") -> None:
        req = request()
        req.identity = ident
        req.route, req.path, req.method, req.auth_outcome = rt.routes[0], path, "GET", "ok"
        req.headers = [(b"host", b"gw"), (b"user-agent", ua), (b"accept", accept)]
        item = buffered(req, status, 10)
        assert not any(isinstance(x, Request) for x in item)
        det.buf.append(item)

    for _ in range(3):
        finished()
    finished(accept=b"text/html")  # other headers, the same user agent: the same client
    finished(ua=b"curl/8.5")
    finished(ua=b"curl/8.5", path="/api/b")
    finished(ua=b"curl/8.5", path="/api/b", status=404)
    det.tick(100.0)
    got = [(ev.ua, ev.path, ev.status, n) for ev, n in seen]
    app, curl = ua_hash(b"app/1"), ua_hash(b"curl/8.5")
    assert got == [(app, "/api/a", 200, 4), (curl, "/api/a", 200, 1),
                   (curl, "/api/b", 200, 1), (curl, "/api/b", 404, 1)]
    assert {ev.jti for ev, _ in seen} == {"j1"} and {ev.sub for ev, _ in seen} == {"alice"}
