"""The per-request record the pipeline passes from filter to filter.

A plain object, built once per request by the client protocol; no framework objects.
Header names are lower-cased bytes, values stripped of surrounding whitespace.

Every field has a class-level default and `Request()` runs no `__init__`: a request sets only
what differs from the defaults, which halves the cost of building one (docs/benchmarks.md).
The defaults are immutable; a request replaces them, never mutates them.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

_NO_PARAMS: dict[str, str] = MappingProxyType({})  # type: ignore[assignment]  # read-only


class Request:
    # -- the head, filled in by the client protocol (protocol.py, head.py) --------------------
    method: str = ""
    raw_target: bytes = b""
    path: str = "/"                 # decoded-then-normalised path used for routing
    query: bytes = b""              # raw query string without '?'
    version: str = "1.1"
    # Every request assigns its own list; the empty default is never appended to.
    headers: list[tuple[bytes, bytes]] = ()  # type: ignore[assignment]
    host: str = ""                  # lower-case, port stripped
    host_header: bytes = b""        # the Host header as sent
    client_ip: str = ""
    scheme: str = "http"
    keep_alive: bool = True
    content_length: int | None = None
    chunked: bool = False
    expect_continue: bool = False
    upgrade: bytes | None = None
    request_id: bytes = b""
    start: float = 0.0
    # -- decisions, filled in by the pipeline ---------------------------------------------------
    route: Any = None               # the compiled route
    params: dict[str, str] = _NO_PARAMS  # {param} captures from the path
    identity: Any = None            # set by the auth filter (wardgate.auth)
    auth_outcome: str = "-"         # reason code for the access log
    # -- the body as it arrives, and the exchange forwarding the request ------------------------
    body: list[bytes] | None = None  # body bytes held until an upstream connection takes them
    buffered = 0                    # their size
    body_done = False               # the whole message has been read
    body_bytes = 0                  # body bytes read so far
    limit = 0                       # the body size allowed (the route's, once matched)
    exchange: Any = None            # the proxy.Exchange forwarding it, once there is one

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
