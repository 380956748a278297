"""OTLP/protobuf encoding of the gateway's spans, by hand: the few messages of
`opentelemetry/proto/collector/trace/v1/trace_service.proto` the export needs, so the runtime
has no protobuf dependency (the tests decode the bytes with the reference classes).

    ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
    ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
    Resource      { repeated KeyValue attributes = 1; }
    ScopeSpans    { InstrumentationScope scope = 1; repeated Span spans = 2; }
    InstrumentationScope { string name = 1; string version = 2; }
    Span { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3;
           bytes parent_span_id = 4; fixed32 flags = 16; string name = 5; SpanKind kind = 6;
           fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8;
           repeated KeyValue attributes = 9; Status status = 15; }
    Status   { string message = 2; StatusCode code = 3; }
    KeyValue { string key = 1; AnyValue value = 2; }
    AnyValue { oneof { string string_value = 1; int64 int_value = 3; } }

Sans-I/O: records in, bytes out. Runs on the worker's loop off the request path.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable

SPAN_KIND_SERVER = 2
STATUS_CODE_ERROR = 2
#: Span.flags bits (trace.proto): the W3C flags in the low byte, then "is the parent remote
#: known" (0x100) and "the parent is remote" (0x200)
_FLAGS_HAS_IS_REMOTE = 0x100
_FLAGS_IS_REMOTE = 0x200

_pack_q = struct.Struct("<Q").pack
_pack_i = struct.Struct("<I").pack


_SMALL = tuple(bytes((i,)) for i in range(128))  # one-byte varints, ready made


def varint(n: int) -> bytes:
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _tag(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def ld(field: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings, bytes and embedded messages."""
    return _tag(field, 2) + varint(len(payload)) + payload


def str_attr(key: str, value: str) -> bytes:
    """A KeyValue with a string AnyValue."""
    return ld(1, key.encode()) + ld(2, ld(1, value.encode("utf-8", "replace")))


def int_attr(key: str, value: int) -> bytes:
    """A KeyValue with an int64 AnyValue (non-negative values only: no zig-zag in int64)."""
    return ld(1, key.encode()) + ld(2, _tag(3, 0) + varint(value))


#: the record the trace step appends per finished request (wardgate.trace.step), by position
RECORD_FIELDS = ("trace_id", "span_id", "parent_id", "tracestate", "sampled", "end_ns",
                 "duration_ns", "method", "route", "status", "path", "host", "client", "auth",
                 "scheme")

# Span fields, their tags precomputed.
_T_STATE, _T_NAME = b"\x1a", b"\x2a"
_TRACE_START = b"\x0a\x10"           # trace_id (1), 16 bytes
_SPAN_START = b"\x12\x08"            # span_id (2), 8 bytes
_PARENT_START = b"\x22\x08"          # parent_span_id (4), 8 bytes
_KIND_SERVER = b"\x30" + varint(SPAN_KIND_SERVER)
_T_START, _T_END = b"\x39", b"\x41"  # fixed64 fields 7 and 8
_FLAGS_CONTINUED = b"\x85\x01" + _pack_i(_FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE | 1)
_FLAGS_ROOT = b"\x85\x01" + _pack_i(_FLAGS_HAS_IS_REMOTE | 1)  # fixed32 field 16
_STATUS_ERROR = ld(15, _tag(3, 0) + varint(STATUS_CODE_ERROR))
_T_ATTR = b"\x4a"


def _str_attr_fn(key: str) -> Callable[[str], bytes]:
    """A fast `value -> Span.attributes field` for one key (the key's bytes built once)."""
    head = ld(1, key.encode()) + b"\x12"
    v = varint

    def attr(value: str) -> bytes:
        raw = value.encode("utf-8", "replace")
        any_value = b"\x0a" + v(len(raw)) + raw
        kv = head + v(len(any_value)) + any_value
        return _T_ATTR + v(len(kv)) + kv

    return attr


_A_METHOD = _str_attr_fn("http.request.method")
_A_PATH = _str_attr_fn("url.path")
_A_SCHEME = _str_attr_fn("url.scheme")
_A_CLIENT = _str_attr_fn("client.address")
_A_AUTH = _str_attr_fn("wardgate.auth.outcome")
_A_HOST = _str_attr_fn("server.address")
_A_ROUTE = _str_attr_fn("http.route")
_A_NAME = _str_attr_fn("wardgate.route")
_STATUS_ATTR: dict[int, bytes] = {}  # status code -> its http.response.status_code attribute, built on first use


def _status_attr(status: int) -> bytes:
    a = _STATUS_ATTR.get(status)
    if a is None:
        kv = int_attr("http.response.status_code", status)
        a = _T_ATTR + varint(len(kv)) + kv
        if len(_STATUS_ATTR) < 1000:
            _STATUS_ATTR[status] = a
    return a


def encode_span(rec: tuple, http_routes: dict[str, str]) -> bytes:  # type: ignore[type-arg]
    """One Span message from a record (positions: RECORD_FIELDS); `http_routes` maps a route
    name to its path template (the low-cardinality `http.route` of the HTTP semconv)."""
    (trace_id, span_id, parent_id, tracestate, sampled, end_ns, duration_ns, method, route,
     status, path, host, client, auth, scheme) = rec
    fromhex = bytes.fromhex
    parts = [_TRACE_START, fromhex(trace_id.decode()), _SPAN_START, fromhex(span_id.decode())]
    if tracestate is not None:
        parts += (_T_STATE, varint(len(tracestate)), tracestate)
    if parent_id is not None:
        parts += (_PARENT_START, fromhex(parent_id.decode()), _FLAGS_CONTINUED)
    else:
        parts.append(_FLAGS_ROOT)
    name = (method + " " + route if route is not None else method).encode("utf-8", "replace")
    parts += (_T_NAME, varint(len(name)), name, _KIND_SERVER,
              _T_START, _pack_q(end_ns - duration_ns), _T_END, _pack_q(end_ns),
              _A_METHOD(method), _status_attr(status), _A_PATH(path), _A_SCHEME(scheme),
              _A_CLIENT(client), _A_AUTH(auth))
    if host:
        parts.append(_A_HOST(host))
    if route is not None:
        parts += (_A_ROUTE(http_routes.get(route, "/")), _A_NAME(route))
    if status >= 500:
        parts.append(_STATUS_ERROR)
    return b"".join(parts)


class Encoder:
    """ExportTraceServiceRequest bodies for one service: the resource and scope are built once."""

    __slots__ = ("_resource", "_scope", "_routes")

    def __init__(self, service_name: str, version: str,
                 http_routes: dict[str, str] | None = None) -> None:
        self._routes = http_routes or {}
        self._resource = ld(1, ld(1, str_attr("service.name", service_name)))
        self._scope = ld(1, ld(1, b"wardgate") + ld(2, version.encode()))

    def spans(self, records: Iterable[tuple]) -> bytes:  # type: ignore[type-arg]
        """The ScopeSpans.spans fields of some records: a batch can be encoded in pieces."""
        routes = self._routes
        out: list[bytes] = []
        for r in records:
            span = encode_span(r, routes)
            out += (b"\x12", varint(len(span)), span)
        return b"".join(out)

    def wrap(self, spans: bytes) -> bytes:
        """The ExportTraceServiceRequest around encoded spans (`spans()` pieces joined)."""
        return ld(1, self._resource + ld(2, self._scope + spans))

    def request(self, records: Iterable[tuple]) -> bytes:  # type: ignore[type-arg]
        return self.wrap(self.spans(records))
