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


# The counter's last three hex digits, preformatted: an id is one concatenation, not a format.
_LOW_DIGITS = tuple(b"%03x" % i for i in range(4096))


class RequestIds:
    """Cheap unique request ids: a random per-process prefix plus a counter in hex."""

    __slots__ = ("_n", "_prefix", "_block")

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex().encode()
        self._n = 0
        self._block = self._prefix + b"-0"  # the prefix and the counter's digits above the last 3

    def next(self, inbound: bytes | None) -> bytes:
        """The inbound id when it is well-formed, else a fresh one."""
        if inbound is not None and _REQUEST_ID.match(inbound):
            return inbound
        return self.fresh()

    def fresh(self) -> bytes:
        n = self._n = self._n + 1
        low = n & 0xFFF
        if not low:
            self._block = b"%s-%x" % (self._prefix, n >> 12)
        return self._block + _LOW_DIGITS[low]


def _forwarded_node(ip: str) -> str:
    # RFC 7239 §6: IPv6 nodes are bracketed and the value quoted.
    return f'"[{ip}]"' if ":" in ip else ip


class TrustedProxies:
    __slots__ = ("_nets", "_cache")

    def __init__(self, cidrs: Iterable[str]) -> None:
        self._nets = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._nets)

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


_UP_REBUILT, _UP_HOP = 1, 2
_UP = dict.fromkeys(REBUILT_UP, _UP_REBUILT) | dict.fromkeys(HOP_BY_HOP, _UP_HOP)
_FORWARDING: dict[tuple[str, str, bytes], bytes] = {}


def _forwarding(client_ip: str, scheme: str, host: bytes, xff: bytes | None = None,
                xfp: bytes | None = None, xfh: bytes | None = None, fwd: bytes | None = None,
                via: bytes | None = None) -> bytes:
    """The X-Forwarded-*, Forwarded and Via lines, our hop appended to the trusted values."""
    ip = client_ip.encode()
    node = f"for={_forwarded_node(client_ip)};proto={scheme}".encode() + b";host=\"" + host + b'"'
    return b"\r\n".join((
        b"X-Forwarded-For: " + (xff + b", " + ip if xff else ip),
        b"X-Forwarded-Proto: " + (xfp or scheme.encode()),
        b"X-Forwarded-Host: " + (xfh or host),
        b"Forwarded: " + (fwd + b", " + node if fwd else node),
        b"Via: " + (via + b", 1.1 wardgate" if via else b"1.1 wardgate"),
    ))


def _forwarding_block(client_ip: str, scheme: str, host: bytes) -> bytes:
    """_forwarding for a request that brought none of its own (or whose own were not
    trusted), built once per (client, scheme, host)."""
    key = (client_ip, scheme, host)
    block = _FORWARDING.get(key)
    if block is None:
        block = _forwarding(client_ip, scheme, host)
        if len(_FORWARDING) >= 1024:
            _FORWARDING.clear()
        _FORWARDING[key] = block
    return block


def upstream_request_lines(
    headers: list[tuple[bytes, bytes]], strip: frozenset[bytes], *, client_ip: str, scheme: str,
    host: bytes, trusted: bool, request_id: bytes | None, keep_upgrade: bool,
    reserved: bool = True,
) -> list[bytes]:
    """Header lines (b'Name: value') for the upstream request, minus framing and Host (and
    minus X-Request-Id when request_id is None: the caller adds it).

    `reserved` False: the route's auth filter has already dropped every inbound `x-wardgate-*`
    field and added its own identity headers, which may use that prefix."""
    out: list[bytes] = []
    xff = xfp = xfh = fwd = via = None
    upgrade = None
    listed = False
    get = _UP.get
    for name, value in headers:
        kind = get(name)
        if kind is None:
            if (strip and name in strip) or b"_" in name \
                    or (reserved and name[0] == 120 and name.startswith(b"x-wardgate-")) \
                    or (name[0] == 112 and name.startswith(b"proxy-")):  # 120 "x", 112 "p"
                continue
            out.append(name + b": " + value)
        elif kind == _UP_REBUILT:
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
        else:
            if name == b"upgrade":
                upgrade = value
            listed = listed or name == b"connection"
    if listed:  # rare: drop the fields that Connection names (RFC 9110 §7.6.1)
        drop = connection_tokens(headers)
        out = [line for line in out if line[:line.index(b":")] not in drop]
    if xff is None and xfp is None and xfh is None and fwd is None and via is None:
        out.append(_forwarding_block(client_ip, scheme, host))
    else:
        out.append(_forwarding(client_ip, scheme, host, xff, xfp, xfh, fwd, via))
    if request_id is not None:
        out.append(b"X-Request-Id: " + request_id)
    if keep_upgrade and upgrade is not None:
        out.append(b"Connection: Upgrade")
        out.append(b"Upgrade: " + upgrade)
    return out


# What the response pass does with a field, by lower-cased name (anything absent is copied).
_CL, _TE, _VIA, _CONN, _HOP, _UPG, _DROP = range(7)
_DOWN = {
    b"content-length": _CL, b"transfer-encoding": _TE, b"via": _VIA, b"connection": _CONN,
    b"keep-alive": _HOP, b"proxy-connection": _HOP, b"te": _HOP, b"trailer": _HOP,
    b"upgrade": _UPG, b"x-request-id": _DROP,
}
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close"})


# Every field the response rewrite cares about, found in one pass over the lower-cased block.
_DOWN_FIELDS = re.compile(
    rb"\r\n(connection|content-length|transfer-encoding|via|x-request-id|upgrade|te|trailer"
    rb"|keep-alive|proxy-[^:]*):[ \t]*([^\r]*)")
_VIA_BLOCK = b"\r\nVia: 1.1 wardgate"


def field_pairs(block: bytes) -> list[tuple[bytes, bytes]]:
    """(name, value) pairs from a field block as llhttp accepted it: b"\\r\\nName: value"...

    llhttp has already refused bare CR/LF, obs-fold and malformed names, so every line
    is exactly one field."""
    out = []
    for line in block.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        out.append((name, value.strip(b" \t")))
    return out


def response_block_fast(block: bytes) -> tuple[bytes, bytes | None] | None:
    """The usual upstream head, rewritten without splitting it into fields.

    `block` is the head's field block (b"\\r\\nName: value" per field, as llhttp accepted it).
    Returns (block for the client, Content-Length value or None), or None when the head has
    anything that needs the general path: a transfer coding, hop-by-hop fields other than a
    plain `Connection: keep-alive|close`, Via or X-Request-Id from upstream, Proxy-* fields.
    The Content-Length line is kept as it is; our Via is appended.
    """
    low = block.lower()
    length = None
    cut = False
    for name, value in _DOWN_FIELDS.findall(low):
        if name == b"content-length" and length is None:
            length = value.rstrip(b" \t")
        elif name == b"connection" and not cut and value.rstrip(b" \t") in _PLAIN_CONNECTION:
            cut = True
        else:
            return None
    if cut:
        i = low.find(b"\r\nconnection:")
        j = low.find(b"\r\n", i + 2)
        block = block[:i] + block[j:] if j >= 0 else block[:i]
    return block + _VIA_BLOCK, length


class ResponseHead:
    """An upstream response head, rewritten for the client in one pass over its fields."""

    __slots__ = ("lines", "length", "coding")

    def __init__(self, lines: list[bytes], length: bytes | None, coding: bytes | None) -> None:
        self.lines = lines      # b"Name: value" (names as the upstream spelled them), plus Via
        self.length = length    # the Content-Length value, if any
        self.coding = coding    # the Transfer-Encoding value (lower-case), if any


def response_head(headers: list[tuple[bytes, bytes]], keep_upgrade: bool = False) -> ResponseHead:
    """Rewrite raw (name, value) pairs from the upstream parser for the client.

    Framing (Content-Length, Transfer-Encoding) is reported, not copied: the caller re-frames.
    Hop-by-hop fields go (RFC 9110 §7.6.1), Via gets our hop, X-Request-Id is the gateway's.
    """
    out: list[bytes] = []
    via = length = coding = None
    get = _DOWN.get
    for name, value in headers:
        lname = name.lower()
        kind = get(lname)
        if kind is None:
            if lname[0] == 112 and lname.startswith(b"proxy-"):  # 112: "p"
                continue
            out.append(name + b": " + value)
            continue
        value = value.rstrip(b" \t")
        if kind == _CL:
            length = value
        elif kind == _TE:
            coding = value.lower()
        elif kind == _VIA:
            via = value if via is None else via + b", " + value
        elif kind == _CONN:
            if value.lower() not in _PLAIN_CONNECTION:
                # Rare: Connection names other fields; redo with the full rules.
                return _response_head_listed(headers, keep_upgrade)
        elif kind == _UPG and keep_upgrade:
            out.append(b"Upgrade: " + value)
    out.append(b"Via: " + (via + b", 1.1 wardgate" if via else b"1.1 wardgate"))
    return ResponseHead(out, length, coding)


def _response_head_listed(headers: list[tuple[bytes, bytes]], keep_upgrade: bool) -> ResponseHead:
    lowered = [(n.lower(), n, v.rstrip(b" \t")) for n, v in headers]
    drop = connection_tokens((n, v) for n, _, v in lowered)
    if keep_upgrade:
        drop -= {b"upgrade"}
    kept = [(n, v) for ln, n, v in lowered if ln not in drop or ln in _DOWN]
    return response_head([(n, v) for n, v in kept
                          if not (n.lower() == b"connection")], keep_upgrade)


def client_response_lines(headers: list[tuple[bytes, bytes]], *, keep_upgrade: bool) -> list[bytes]:
    """Header lines for the client from an upstream response, minus framing."""
    return response_head(headers, keep_upgrade).lines
