"""Header rewriting between client and upstream. Sans-I/O, pure functions over byte pairs.

RFC 9110 §7.6.1: hop-by-hop fields (Connection and every field it names, plus the classic
list) are never forwarded. Identity is never taken from the client: `x-wardgate-*` and the
route's configured identity headers are always stripped (done by the caller's strip set).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
    b"transfer-encoding", b"upgrade",
})
# Rebuilt by the gateway on the way up, never copied from the client.
REBUILT_UP = frozenset({
    b"host", b"content-length", b"expect", b"x-forwarded-for", b"x-forwarded-proto",
    b"x-forwarded-host", b"forwarded", b"via", b"x-request-id",
})
REBUILT_DOWN = frozenset({b"content-length", b"x-request-id", b"via", b"server", b"date"})
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Field names listed in Connection (RFC 9110 §7.6.1), lower-cased."""
    out: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            for tok in value.split(b","):
                tok = tok.strip().lower()
                if tok:
                    out.add(tok)
    return frozenset(out)


class RequestIds:
    """Cheap unique request ids: a random per-process prefix plus a counter."""

    __slots__ = ("_n", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex().encode()
        self._n = 0

    def next(self, inbound: bytes | None) -> bytes:
        if inbound is not None and _REQUEST_ID.match(inbound):
            return inbound
        self._n += 1
        return b"%s-%x" % (self._prefix, self._n)


def _forwarded_node(ip: str) -> str:
    # RFC 7239 §6: IPv6 nodes are bracketed and the value quoted.
    return f'"[{ip}]"' if ":" in ip else ip


class TrustedProxies:
    __slots__ = ("_nets", "_cache")

    def __init__(self, cidrs: Iterable[str]) -> None:
        self._nets = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        self._cache: dict[str, bool] = {}

    def __contains__(self, ip: str) -> bool:
        hit = self._cache.get(ip)
        if hit is None:
            try:
                addr = ipaddress.ip_address(ip)
                hit = any(addr in n for n in self._nets)
            except ValueError:
                hit = False
            if len(self._cache) < 4096:
                self._cache[ip] = hit
        return hit


def upstream_request_lines(
    headers: list[tuple[bytes, bytes]], strip: frozenset[bytes], *, client_ip: str, scheme: str,
    host: bytes, trusted: bool, request_id: bytes, keep_upgrade: bool,
) -> list[bytes]:
    """Header lines (b'Name: value') for the upstream request, minus framing and Host."""
    out: list[bytes] = []
    names: list[bytes] = []
    xff = xfp = xfh = fwd = via = None
    upgrade = None
    listed = False
    for name, value in headers:
        if name in REBUILT_UP:
            if trusted:
                if name == b"x-forwarded-for":
                    xff = value if xff is None else xff + b", " + value
                elif name == b"x-forwarded-proto":
                    xfp = value
                elif name == b"x-forwarded-host":
                    xfh = value
                elif name == b"forwarded":
                    fwd = value if fwd is None else fwd + b", " + value
            if name == b"via":
                via = value if via is None else via + b", " + value
            continue
        if name in HOP_BY_HOP or name.startswith(b"proxy-"):
            if name == b"upgrade":
                upgrade = value
            listed = listed or name == b"connection"
            continue
        if name in strip or name.startswith(b"x-wardgate-") or b"_" in name:
            continue
        out.append(name + b": " + value)
        names.append(name)
    if listed:  # rare: drop the fields that Connection names (RFC 9110 §7.6.1)
        drop = connection_tokens(headers)
        out = [line for line, name in zip(out, names, strict=True) if name not in drop]
    ip = client_ip.encode()
    out.append(b"X-Forwarded-For: " + (xff + b", " + ip if xff else ip))
    out.append(b"X-Forwarded-Proto: " + (xfp or scheme.encode()))
    out.append(b"X-Forwarded-Host: " + (xfh or host))
    node = f"for={_forwarded_node(client_ip)};proto={scheme}".encode() + b";host=\"" + host + b'"'
    out.append(b"Forwarded: " + (fwd + b", " + node if fwd else node))
    out.append(b"Via: " + (via + b", 1.1 wardgate" if via else b"1.1 wardgate"))
    out.append(b"X-Request-Id: " + request_id)
    if keep_upgrade and upgrade is not None:
        out.append(b"Connection: Upgrade")
        out.append(b"Upgrade: " + upgrade)
    return out


def client_response_lines(headers: list[tuple[bytes, bytes]], *, keep_upgrade: bool) -> list[bytes]:
    """Header lines for the client from an upstream response, minus framing."""
    out: list[bytes] = []
    names: list[bytes] = []
    via = None
    listed = False
    for name, value in headers:
        if name in REBUILT_DOWN:
            if name == b"via":
                via = value if via is None else via + b", " + value
            elif name in (b"server", b"date"):
                out.append(name.title() + b": " + value)
                names.append(name)
            continue
        if name in HOP_BY_HOP or name.startswith(b"proxy-"):
            if keep_upgrade and name == b"upgrade":
                out.append(b"Upgrade: " + value)
                names.append(name)
            listed = listed or name == b"connection"
            continue
        out.append(name + b": " + value)
        names.append(name)
    if listed:  # rare: drop the fields that Connection names (RFC 9110 §7.6.1)
        drop = connection_tokens(headers) - ({b"upgrade"} if keep_upgrade else set())
        out = [line for line, name in zip(out, names, strict=True) if name not in drop]
    out.append(b"Via: " + (via + b", 1.1 wardgate" if via else b"1.1 wardgate"))
    return out
