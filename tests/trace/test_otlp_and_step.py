"""The hand-written OTLP encoder, decoded by the reference protobuf classes; and the trace
step over Request objects (no sockets)."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from wardgate.config.tracing import TracingConfig
from wardgate.gateway.headers import TrustedProxies
from wardgate.gateway.request import Request
from wardgate.trace.otlp import RECORD_FIELDS, Encoder
from wardgate.trace.step import Tracer

TID = b"4bf92f3577b34da6a3ce929d0e0e4736"
PID = b"00f067aa0ba902b7"
SID = b"1122334455667788"


def attrs(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = v.string_value if v.HasField("string_value") else v.int_value
    return out


def record(**over: Any) -> tuple:
    base = dict(trace_id=TID, span_id=SID, parent_id=PID, tracestate=b"rojo=1", sampled=True,
                end_ns=1_700_000_000_123_456_789, duration_ns=2_500_000, method="GET",
                route="orders", status=200, path="/orders/7", host="api.example",
                client="127.0.0.1", auth="ok", scheme="http")
    base.update(over)
    return tuple(base[f] for f in RECORD_FIELDS)


def test_encoded_request_decodes_with_the_reference_classes():
    enc = Encoder("edge-gw", "0.1.0", {"orders": "/orders/{id}"})
    body = enc.request([record(), record(parent_id=None, tracestate=None, status=503,
                                         route=None, span_id=b"99aabbccddeeff00", host="")])
    msg = ExportTraceServiceRequest.FromString(body)
    (rs,) = msg.resource_spans
    assert {kv.key: kv.value.string_value for kv in rs.resource.attributes} \
        == {"service.name": "edge-gw"}
    (ss,) = rs.scope_spans
    assert ss.scope.name == "wardgate" and ss.scope.version == "0.1.0"
    first, second = ss.spans
    assert first.trace_id.hex() == TID.decode() and first.span_id.hex() == SID.decode()
    assert first.parent_span_id.hex() == PID.decode() and first.trace_state == "rojo=1"
    assert first.kind == Span.SPAN_KIND_SERVER and first.name == "GET orders"
    assert first.end_time_unix_nano == 1_700_000_000_123_456_789
    assert first.end_time_unix_nano - first.start_time_unix_nano == 2_500_000
    assert first.flags == 0x301  # sampled, parent known to be remote
    assert attrs(first) == {
        "http.request.method": "GET", "http.response.status_code": 200,
        "url.path": "/orders/7", "url.scheme": "http", "client.address": "127.0.0.1",
        "wardgate.auth.outcome": "ok", "server.address": "api.example",
        "http.route": "/orders/{id}", "wardgate.route": "orders"}
    assert first.status.code == Status.STATUS_CODE_UNSET
    assert second.status.code == Status.STATUS_CODE_ERROR  # 5xx
    assert second.name == "GET" and second.parent_span_id == b"" and second.flags == 0x101
    assert "http.route" not in attrs(second) and "server.address" not in attrs(second)


def test_non_ascii_path_is_valid_utf8_in_the_span():
    body = Encoder("s", "v").request([record(path="/caf\u00e9")])
    span = ExportTraceServiceRequest.FromString(body).resource_spans[0].scope_spans[0].spans[0]
    assert attrs(span)["url.path"] == "/caf\u00e9"


# -- the step ----------------------------------------------------------------------------------
def req(headers: list[tuple[bytes, bytes]], ip: str = "10.0.0.9") -> Request:
    r = Request()
    r.headers = headers
    r.client_ip = ip
    r.method = "GET"
    r.path = "/x"
    return r


def tracer(**cfg: Any) -> Tracer:
    return Tracer(TracingConfig(**cfg), TrustedProxies(["10.1.0.0/16"]), clock=lambda: 10**18)


INBOUND = b"00-" + TID + b"-" + PID + b"-01"


def test_valid_inbound_trace_is_continued_with_a_new_parent():
    r = req([(b"traceparent", INBOUND), (b"tracestate", b"rojo=1")])
    tracer().begin(r)
    assert r.trace is not None
    tid, sid, parent, state, sampled = r.trace
    assert (tid, parent, state, sampled) == (TID, PID, b"rojo=1", True)
    assert sid != PID and len(sid) == 16
    assert r.trace_line == (b"\r\ntraceparent: 00-" + TID + b"-" + sid + b"-01"
                            + b"\r\ntracestate: rojo=1")


def test_invalid_or_duplicated_traceparent_starts_a_new_trace_without_tracestate():
    for headers in ([(b"traceparent", INBOUND.upper()), (b"tracestate", b"rojo=1")],
                    [(b"traceparent", INBOUND), (b"traceparent", INBOUND)]):
        r = req(headers)
        tracer(sample_ratio=1.0).begin(r)
        assert r.trace is not None and r.trace[0] != TID and r.trace[2] is None
        assert b"tracestate" not in r.trace_line and r.trace_line.endswith(b"-01")


def test_trust_inbound_trusted_proxies_and_none():
    headers = [(b"traceparent", INBOUND)]
    t = tracer(trust_inbound="trusted_proxies")
    outsider, proxy = req(headers, "10.0.0.9"), req(headers, "10.1.2.3")
    t.begin(outsider)
    t.begin(proxy)
    assert outsider.trace[0] != TID and proxy.trace[0] == TID  # type: ignore[index]
    nobody = req(headers, "10.1.2.3")
    tracer(trust_inbound="none").begin(nobody)
    assert nobody.trace[0] != TID  # type: ignore[index]


def test_sampling_ratio_and_its_defaults():
    assert tracer().begin(r := req([])) is None and r.trace[4] is False  # type: ignore[index]
    t = tracer(otlp_endpoint="http://127.0.0.1:4318/v1/traces")
    t.begin(r := req([]))
    assert r.trace[4] is True  # type: ignore[index]
    rolls = iter([0.1, 0.9])
    t = Tracer(TracingConfig(sample_ratio=0.5), TrustedProxies([]), rand=lambda: next(rolls))
    a, b = req([]), req([])
    t.begin(a)
    t.begin(b)
    assert (a.trace[4], b.trace[4]) == (True, False)  # type: ignore[index]


def test_finish_queues_sampled_spans_and_drops_past_the_bound():
    t = tracer(otlp_endpoint="http://127.0.0.1:4318/v1/traces", queue_size=3, batch_size=2)
    woken = []
    t.wake = lambda: woken.append(1)
    for _ in range(5):
        r = req([])
        t.begin(r)
        t.finish(r, 200, 0.001)
    assert len(t.queue) == 3 and t.dropped == 2 and woken == [1]
    unsampled = req([(b"traceparent", INBOUND[:-2] + b"00")])
    t.begin(unsampled)
    t.finish(unsampled, 200, 0.001)
    assert t.dropped == 2 and len(t.queue) == 3  # not sampled: not recorded at all
    assert len(t.take(2)) == 2 and len(t.queue) == 1
