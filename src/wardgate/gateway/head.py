"""Checks on a parsed request head that llhttp does not make (data-plane facts §1–§2).

Sans-I/O: fills the Request from the parser's accessors and headers, or raises the error the
client gets. Every failure here closes the connection, because the framing that follows
cannot be trusted.
"""

from __future__ import annotations

import re

from wardgate.errors import BadRequest, HttpVersionNotSupported
from wardgate.gateway.request import Request
from wardgate.gateway.target import split_target

# RFC 9110 §4.2.3 / RFC 3986 §3.2.2: reg-name or IP literal, optional port; nothing else.
_HOST = re.compile(rb"^(?:[A-Za-z0-9._~!$&'()*+,;=%-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_METHOD_NAMES = {m.encode(): m for m in METHODS}


def port_ok(host: bytes) -> bool:
    _, sep, port = host.rpartition(b":")
    if not sep or b"]" in port:
        return True
    return int(port) <= 65535


def foreign_protocol(prev_tail: bytes, chunk: bytes, url: bytes) -> bool:
    """True when the request line just parsed was RTSP/1.0 or ICE/1.0, not HTTP/1.0.

    llhttp accepts those request lines and reports them as version 1.0 (facts §1). `chunk` is
    the read being parsed and `prev_tail` the end of the previous one, so a line split across
    two reads is still seen.
    """
    window = prev_tail + chunk
    tail = url[-32:]
    return tail + b" RTSP/" in window or tail + b" ICE/" in window


def read_request_line(req: Request, version: str, method_b: bytes, url: bytes,
                      foreign: bool) -> None:
    """`foreign`: the request line was RTSP or ICE, not HTTP (see foreign_protocol)."""
    if version != "1.1" and (version != "1.0" or foreign):
        raise HttpVersionNotSupported("only HTTP/1.0 and HTTP/1.1", close=True)
    req.version = version
    method = _METHOD_NAMES.get(method_b)
    if method is None:
        shown = method_b.decode("ascii", "replace")
        raise BadRequest(f"method {shown} is not supported", close=True, code="bad_method")
    req.method = method
    req.raw_target = url
    req.path, req.query = split_target(url, method)


# What read_fields derives from the fields, in this order (see HeadFacts).
HeadFacts = tuple[bytes, str, "int | None", bool, bool, "bytes | None", bytes]


def read_fields(req: Request) -> HeadFacts:
    """Check the fields llhttp does not (Host, Expect, TE on 1.0) and note the ones the
    gateway acts on. Depends only on req.headers and req.version (and returns what it set),
    so a client that repeats its fields on a keep-alive connection can reuse the result."""
    version = req.version
    hosts = 0
    host = b""
    for name, value in req.headers:
        if name == b"host":
            hosts += 1
            host = value
        elif name == b"content-length":
            req.content_length = int(value)  # llhttp validated it; one only (facts §2)
        elif name == b"transfer-encoding":
            req.chunked = True
        elif name == b"expect":
            if value.lower() != b"100-continue":
                raise BadRequest("unsupported Expect", close=True, code="bad_expect")
            req.expect_continue = True
        elif name == b"upgrade":
            req.upgrade = value
        elif name == b"x-request-id":
            req.request_id = value  # inbound; RequestIds.next() keeps it only if it is valid
    if hosts > 1 or (hosts == 0 and version == "1.1"):
        raise BadRequest("HTTP/1.1 needs exactly one Host header", close=True, code="bad_host")
    if req.chunked and version == "1.0":
        # RFC 9112 §6.1: Transfer-Encoding on 1.0 is faulty framing.
        raise BadRequest("Transfer-Encoding on HTTP/1.0", close=True, code="bad_framing")
    req.host_header = host
    req.host = _routing_host(host) if hosts else ""
    return (host, req.host, req.content_length, req.chunked, req.expect_continue, req.upgrade,
            req.request_id)


# The fields read_fields looks at (lower-cased): a head whose other fields changed has the same
# facts, and passes or fails the same checks.
_FACT_FIELDS = frozenset({b"host", b"content-length", b"transfer-encoding", b"expect", b"upgrade",
                          b"x-request-id"})


def refresh_fields(last_raw: list[tuple[bytes, bytes]], last: list[tuple[bytes, bytes]],
                   fields: list[tuple[bytes, bytes]]) -> tuple[list[tuple[bytes, bytes]], int] | None:
    """The lowered fields of a head that repeats the last one's field names (`last_raw`, read
    into `last`) with new values only outside _FACT_FIELDS (a client sending a new token or
    cookie each time); with the change in size. None for any other head: read it afresh.

    The caller checks the lists have the same length; read_fields' result for `last` holds."""
    out = None
    grown = 0
    for i, (pair, old) in enumerate(zip(fields, last_raw, strict=True)):
        if pair != old:
            if pair[0] != old[0]:
                return None
            low = last[i][0]
            if low in _FACT_FIELDS:
                return None
            if out is None:
                out = last.copy()
            value = pair[1]
            out[i] = (low, value.rstrip(b" \t"))
            grown += len(value) - len(old[1])
    return None if out is None else (out, grown)


# Host header -> routing host, for headers already validated. Bounded by clearing.
_HOSTS: dict[bytes, str] = {}


def _routing_host(host: bytes) -> str:
    h = _HOSTS.get(host)
    if h is None:
        if not _HOST.match(host) or (b":" in host and not port_ok(host)):
            raise BadRequest("invalid Host header", close=True, code="bad_host")
        low = host.decode("latin-1").lower()
        h = low if low.endswith("]") or ":" not in low else low.rsplit(":", 1)[0]
        if len(_HOSTS) >= 1024:
            _HOSTS.clear()
        _HOSTS[host] = h
    return h


def classify_parser_error(exc: Exception) -> BadRequest:
    """An llhttp rejection as the client's 400 (the message itself stays in our logs)."""
    name = type(exc).__name__
    if name == "HttpParserInvalidMethodError":
        return BadRequest("unknown or malformed method", close=True, code="bad_method")
    if name == "HttpParserInvalidURLError":
        return BadRequest("malformed request target", close=True, code="bad_target")
    return BadRequest("malformed HTTP request", close=True, code="bad_framing")
