"""The per-request record the pipeline passes from filter to filter.

A plain slotted object, built once per request by the client protocol; no framework objects.
Header names are lower-cased bytes, values stripped of surrounding whitespace.
"""

from __future__ import annotations

from typing import Any


class Request:
    __slots__ = (
        "method", "raw_target", "path", "query", "version", "headers", "host", "host_header",
        "client_ip",
        "scheme", "keep_alive", "content_length", "chunked", "expect_continue", "upgrade",
        "request_id", "route", "params", "identity", "auth_outcome", "start",
    )

    def __init__(self) -> None:
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
        self.route: Any = None           # the compiled route
        self.params: dict[str, str] = {}  # {param} captures from the path
        self.identity: Any = None        # set by the auth filter (wardgate.auth)
        self.auth_outcome: str = "-"     # reason code for the access log
        self.start: float = 0.0

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


class Pending:
    """A parsed request head plus its body as it arrives."""

    __slots__ = ("req", "body", "body_done", "body_bytes", "buffered", "limit", "exchange")

    def __init__(self, req: Request, limit: int) -> None:
        self.req = req
        self.body: list[bytes] = []
        self.body_done = False
        self.body_bytes = 0
        self.buffered = 0
        self.limit = limit
        self.exchange: Any = None  # the proxy.Exchange forwarding it, once there is one
