"""The per-request record the pipeline passes from filter to filter.

A plain slotted object, built once per request by the client protocol; no framework objects.
Header names are lower-cased bytes, values stripped of surrounding whitespace.

Slotted, with every field set in __init__: CPython 3.11 specialises attribute access to a
slot. A class without slots whose instances gain attributes after the first few dozen
instances exist (64 connections parse their first requests before any is routed) falls back
to a per-instance dict and generic attribute access on every request.
"""

from __future__ import annotations

from typing import Any


class Request:
    __slots__ = (
        "method", "raw_target", "path", "query", "version", "headers", "host", "host_header",
        "client_ip", "scheme", "keep_alive", "content_length", "chunked", "expect_continue",
        "upgrade", "request_id", "start", "route", "params", "identity", "auth_outcome",
        "body", "buffered", "body_done", "body_bytes", "limit", "exchange", "resp_fields",
        "rate_limit", "trace", "trace_line", "dpop_key",
    )

    def __init__(self) -> None:
        # -- the head, filled in by the client protocol (protocol.py, head.py) ----------------
        self.method: str = ""
        self.raw_target: bytes = b""
        self.path: str = "/"            # decoded-then-normalised path used for routing
        self.query: bytes = b""         # raw query string without '?'
        self.version: str = "1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.host: str = ""             # lower-case, port stripped
        self.host_header: bytes = b""   # the Host header as sent
        self.client_ip: str = ""
        self.scheme: str = "http"
        self.keep_alive: bool = True
        self.content_length: int | None = None
        self.chunked: bool = False
        self.expect_continue: bool = False
        self.upgrade: bytes | None = None
        self.request_id: bytes = b""
        self.start: float = 0.0
        # -- decisions, filled in by the pipeline -----------------------------------------------
        self.route: Any = None           # the compiled route
        self.params: dict[str, str] = {}  # {param} captures from the path
        self.identity: Any = None        # set by the auth filter (wardgate.auth)
        self.auth_outcome: str = "-"     # reason code for the access log
        self.resp_fields = b""           # extra response field lines (b"\r\nName: value" each)
        self.rate_limit: str | None = None  # the limit that refused it, for the access log
        #: (trace_id, span_id, parent_id, tracestate, sampled) when tracing is on (wardgate.trace)
        self.trace: tuple[bytes, bytes, bytes | None, bytes | None, bool] | None = None
        self.trace_line = b""            # the upstream's traceparent (+ tracestate) line(s),
        #                                  and the detection risk line (wardgate.detect)
        self.dpop_key: bytes | None = None  # a proof's replay key still to check on Redis
        # -- the body as it arrives, and the exchange forwarding the request --------------------
        self.body: list[bytes] | None = None  # body bytes held until an upstream connection takes them
        self.buffered = 0                # their size
        self.body_done = False           # the whole message has been read
        self.body_bytes = 0              # body bytes read so far
        self.limit = 0                   # the body size allowed (the route's, once matched)
        self.exchange: Any = None        # the proxy.Exchange forwarding it, once there is one

    def header(self, name: bytes) -> bytes | None:
        """First value of a header (name lower-case)."""
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def header_all(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n == name]

    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)
