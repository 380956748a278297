"""Trace propagation and export through a real `wardgate run`, a real upstream and a real
OTLP/HTTP receiver, all on 127.0.0.1."""

from __future__ import annotations

import http.client
import re
import socket
import time

from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.support.gateway import free_port
from tests.trace.conftest import traced_config
from tests.trace.receiver import Receiver, attributes

TID = "4bf92f3577b34da6a3ce929d0e0e4736"
PID = "00f067aa0ba902b7"
INBOUND = f"00-{TID}-{PID}-01"
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$")


def get(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def upstream_traceparent(upstream) -> tuple[str, str, str]:
    seen = upstream.requests[-1]
    (value,) = seen.header_all("traceparent")  # exactly one: inbound copies are replaced
    m = TRACEPARENT.match(value)
    assert m, value
    return m.group(1), m.group(2), value[-2:]


def test_inbound_trace_continued_upstream_gets_the_gateway_span_and_the_receiver_the_span(
        upstream, receiver, gateway_factory):
    gw = gateway_factory(traced_config(upstream.url, {
        "otlp_endpoint": receiver.url, "flush_interval_ms": 100, "service_name": "edge"}))
    assert get(gw.port, "/echo/one?x=1",
               {"traceparent": INBOUND, "tracestate": "rojo=00f067aa0ba902b7"}) == 200
    trace_id, parent_id, flags = upstream_traceparent(upstream)
    assert trace_id == TID and flags == "01"
    assert parent_id != PID  # the gateway's own span is the upstream's parent
    assert upstream.requests[-1].header_all("tracestate") == ["rojo=00f067aa0ba902b7"]
    (line,) = gw.access_log(wait_for=1)
    assert line["trace_id"] == TID and line["span_id"] == parent_id

    (span,) = receiver.wait_spans(1)
    assert receiver.content_types == ["application/x-protobuf"]
    assert span.trace_id.hex() == TID and span.span_id.hex() == parent_id
    assert span.parent_span_id.hex() == PID and span.trace_state == "rojo=00f067aa0ba902b7"
    assert span.kind == Span.SPAN_KIND_SERVER and span.name == "GET all"
    assert span.end_time_unix_nano > span.start_time_unix_nano > 1_600_000_000 * 10**9
    a = attributes(span)
    assert a["http.request.method"] == "GET" and a["http.response.status_code"] == 200
    assert a["url.path"] == "/echo/one" and a["http.route"] == "/"
    assert a["client.address"] == "127.0.0.1" and a["server.address"] == "127.0.0.1"
    assert a["wardgate.auth.outcome"] == "-"
    (rs,) = receiver.requests[0].resource_spans
    assert rs.resource.attributes[0].key == "service.name"
    assert rs.resource.attributes[0].value.string_value == "edge"


def test_invalid_traceparent_replaced_and_its_tracestate_dropped(upstream, gateway_factory):
    gw = gateway_factory(traced_config(upstream.url, {"sample_ratio": 1.0}))
    for bad in (INBOUND.upper(), f"00-{'0' * 32}-{PID}-01", f"ff-{TID}-{PID}-01", "junk"):
        assert get(gw.port, "/echo", {"traceparent": bad, "tracestate": "rojo=1"}) == 200
        trace_id, _, flags = upstream_traceparent(upstream)
        assert trace_id != TID and flags == "01"
        assert upstream.requests[-1].header_all("tracestate") == []
    lines = gw.access_log(wait_for=4)
    assert len({line["trace_id"] for line in lines}) == 4  # each a new trace


def test_untrusted_client_not_continued_with_trust_inbound_trusted_proxies(
        upstream, gateway_factory):
    gw = gateway_factory(traced_config(upstream.url, {"trust_inbound": "trusted_proxies"},
                                       trusted_proxies=["10.9.0.0/16"]))
    assert get(gw.port, "/echo", {"traceparent": INBOUND}) == 200
    trace_id, _, flags = upstream_traceparent(upstream)
    assert trace_id != TID and flags == "00"  # a new trace, sampled by the ratio (0 here)
    trusted = gateway_factory(traced_config(upstream.url, {"trust_inbound": "trusted_proxies"},
                                            trusted_proxies=["127.0.0.1"]))
    assert get(trusted.port, "/echo", {"traceparent": INBOUND}) == 200
    assert upstream_traceparent(upstream)[0] == TID


def test_refusals_are_traced_too_and_5xx_spans_are_errors(receiver, gateway_factory):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: 502
    gw = gateway_factory(traced_config(dead, {"otlp_endpoint": receiver.url,
                                              "flush_interval_ms": 100}))
    assert get(gw.port, "/x", {"traceparent": INBOUND}) == 502
    (span,) = receiver.wait_spans(1)
    assert span.trace_id.hex() == TID and span.status.code == Status.STATUS_CODE_ERROR
    assert attributes(span)["http.response.status_code"] == 502
    assert gw.access_log(wait_for=1)[0]["trace_id"] == TID


def test_without_tracing_the_fields_pass_through_untouched(upstream, gateway_factory):
    gw = gateway_factory(traced_config(upstream.url, None))
    assert get(gw.port, "/echo", {"traceparent": INBOUND.upper()}) == 200
    assert upstream.requests[-1].header_all("traceparent") == [INBOUND.upper()]
    assert "trace_id" not in gw.access_log(wait_for=1)[0]


def _timed_requests(port: int, n: int) -> tuple[list[float], float]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    t0 = time.monotonic()
    for i in range(n):
        s = time.monotonic()
        c.request("GET", f"/echo/{i}")
        r = c.getresponse()
        r.read()
        assert r.status == 200
        times.append(time.monotonic() - s)
    c.close()
    return sorted(times), time.monotonic() - t0


def _export_down_check(upstream, gateway_factory, endpoint: str) -> None:
    gw = gateway_factory(traced_config(upstream.url, {
        "otlp_endpoint": endpoint, "flush_interval_ms": 50, "timeout_ms": 300,
        "batch_size": 16, "queue_size": 64}))
    times, total = _timed_requests(gw.port, 200)
    p99 = times[int(len(times) * 0.99) - 1]
    # Loopback requests take ~1 ms; an export on the request path would add its timeout.
    assert p99 < 0.25, f"p99 {p99:.3f}s"
    assert total < 10, f"total {total:.1f}s"
    deadline = time.monotonic() + 5
    while '"event":"trace_export_failing"' not in gw.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gw.stderr().count('"event":"trace_export_failing"') == 1  # once per state change
    assert len(gw.access_log(wait_for=200)) == 200


def test_export_endpoint_closed_never_slows_requests(upstream, gateway_factory):
    with socket.socket() as s:  # a port that refuses connections
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _export_down_check(upstream, gateway_factory, f"http://127.0.0.1:{port}/v1/traces")


def test_export_endpoint_hanging_never_slows_requests(upstream, gateway_factory):
    hang = Receiver("hang").start()
    try:
        _export_down_check(upstream, gateway_factory, hang.url)
        assert hang.posts >= 1  # it was really tried, and it really hung
    finally:
        hang.stop()


def test_recovers_when_the_receiver_comes_back(upstream, gateway_factory):
    flaky = Receiver("error").start()
    try:
        gw = gateway_factory(traced_config(upstream.url, {
            "otlp_endpoint": flaky.url, "flush_interval_ms": 50}))
        assert get(gw.port, "/echo") == 200
        gw.wait_event("trace_export_failing", timeout=5)
        flaky.mode = "ok"
        assert get(gw.port, "/echo", {"traceparent": INBOUND}) == 200
        gw.wait_event("trace_export_recovered", timeout=5)
        assert [s.trace_id.hex() for s in flaky.wait_spans(1)] == [TID]
    finally:
        flaky.stop()


def test_one_keep_alive_connection_with_a_new_traceparent_each_time(upstream, gateway_factory):
    # The gateway reuses per-connection work for repeated fields; each request's own
    # traceparent must still be read, and each upstream request gets its own span id.
    gw = gateway_factory(traced_config(upstream.url, {}))
    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    sent = [f"00-{i:032x}-{PID}-01" for i in range(1, 4)] + [INBOUND] * 2
    got = []
    for value in sent:
        c.request("GET", "/echo", headers={"traceparent": value})
        r = c.getresponse()
        r.read()
        assert r.status == 200
        got.append(upstream_traceparent(upstream))
    c.close()
    assert [g[0] for g in got] == [v[3:35] for v in sent]
    assert len({g[1] for g in got}) == 5  # a new gateway span per request
    assert upstream.connections == 1
