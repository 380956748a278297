"""Raw-socket suite for request framing (issue 2 §3, §7; facts §2-§5, §10): status and
problem+json body, closed connection on broken framing, and nothing smuggled upstream (a barrier
request answered on a fresh connection shows the gateway caught up before we look)."""

from __future__ import annotations

import json
import select
import socket
import time
from collections import namedtuple
from collections.abc import Iterator

import pytest

from tests.gateway.conftest import plain_config
from tests.support.gateway import GatewayProcess
from tests.support.upstream import Upstream

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
BARRIER = "/echo/barrier"


# -- helpers (also used by test_bad_input.py) --------------------------------------------------
Resp = namedtuple("Resp", "status headers body complete")  # headers: lower-case name -> value


def parse_responses(data: bytes, methods: list[str] | None = None) -> list[Resp]:
    """Split a byte stream into responses (1xx are listed too). `methods` marks HEAD answers."""
    out: list[Resp] = []
    finals = 0  # final (non-1xx) responses so far, to line up with `methods`
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep or not head.startswith(b"HTTP/1."):
            break
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        fields = (line.partition(b":") for line in lines[1:])
        headers = {n.strip().lower().decode("latin-1"): v.strip().decode("latin-1")
                   for n, _, v in fields}
        head_only = (methods or [])[finals:finals + 1] == ["HEAD"]
        if status < 200 or status in (204, 304) or head_only:
            body, data, complete = b"", rest, True
        elif "content-length" in headers:
            n = int(headers["content-length"])
            body, data, complete = rest[:n], rest[n:], len(rest) >= n
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body, data, complete = _dechunk(rest)
        else:
            body, data, complete = rest, b"", False  # read until close: caller decides
        out.append(Resp(status, headers, body, complete))
        finals += status >= 200
        if not complete:
            break
    return out


def _dechunk(data: bytes) -> tuple[bytes, bytes, bool]:
    body = b""
    while True:
        line, sep, rest = data.partition(b"\r\n")
        if not sep:
            return body, b"", False
        size = int(line.split(b";")[0], 16)
        if size == 0:
            _, sep, rest = rest.partition(b"\r\n")  # no trailers from the gateway
            return body, rest, bool(sep)
        if len(rest) < size + 2:
            return body + rest[:size], b"", False
        body += rest[:size]
        data = rest[size + 2:]


class Conn:
    """One client connection with a deadline on every read."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.close = self.sock.close
        self.buf = b""
        self.closed = False

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            return False

    def _recv(self, timeout: float) -> None:
        r, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if not r:
            return
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
        self.buf += data

    def read_until_closed(self, timeout: float = 2.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._recv(deadline - time.monotonic())
        return self.closed

    def responses(self, n: int, timeout: float = 3.0, methods: list[str] | None = None,
                  ) -> list[Resp]:
        """Read until n complete final responses (or close, or the deadline)."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            got = [r for r in parse_responses(self.buf, methods) if r.status >= 200]
            if len(got) >= n and all(r.complete for r in got):
                break
            self._recv(min(0.2, deadline - time.monotonic()))
        return parse_responses(self.buf, methods)


def exchange(port: int, data: bytes, n: int | None = None, methods: list[str] | None = None,
             timeout: float = 2.0) -> tuple[list[Resp], bool]:
    """Send `data` on a new connection; read until it closes, or (given n) n final responses."""
    c = Conn(port)
    try:
        c.send(data)
        c.read_until_closed(timeout) if n is None else c.responses(n, methods=methods)
        return parse_responses(c.buf, methods), c.closed
    finally:
        c.close()


def assert_problem(r: Resp, status: int | tuple[int, ...]) -> dict:
    allowed = status if isinstance(status, tuple) else (status,)
    assert r.status in allowed, f"status {r.status}, expected {allowed}: {r.body[:300]!r}"
    assert r.headers.get("content-type") == "application/problem+json", r.headers
    problem = json.loads(r.body)
    assert problem["status"] == r.status
    return problem


def assert_rejected(resps: list[Resp], closed: bool, status: int | tuple[int, ...],
                    must_close: bool = True) -> dict:
    assert resps, f"no response at all (closed={closed})"
    assert len(resps) == 1, f"expected one response, got {[r.status for r in resps]}"
    problem = assert_problem(resps[0], status)
    if must_close:
        assert resps[0].headers.get("connection") == "close"
        assert closed, "connection left open after broken framing"
    return problem


def forwarded(port: int, upstream: Upstream) -> list[str]:
    """Targets the upstream parsed, after a barrier request proved the gateway caught up."""
    resps, _ = exchange(port, get(BARRIER), 1)
    assert resps and resps[0].status == 200, "gateway did not answer the barrier request"
    return [p for p in upstream.paths() if p != BARRIER]


# -- fixtures: one gateway for the module -----------------------------------------------------
@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    yield (u := Upstream("a").start())
    u.stop()


@pytest.fixture(scope="module")
def gw(up: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    cfg = plain_config(up.url)
    cfg["limits"] = {"max_body_bytes": 1000}
    cfg["timeouts"] = {"header_s": 1, "body_s": 1, "keepalive_s": 1}
    yield (g := GatewayProcess(cfg, tmp_path_factory.mktemp("framing")).start())
    g.stop()


@pytest.fixture(autouse=True)
def _fresh_upstream(up: Upstream) -> None:
    up.requests.clear()


def get(path: str, method: str = "GET", version: str = "1.1") -> bytes:
    return f"{method} {path} HTTP/{version}\r\nHost: x\r\n\r\n".encode()


def post(headers: bytes, body: bytes, version: bytes = b"1.1") -> bytes:
    return b"POST /echo HTTP/" + version + b"\r\nHost: x\r\n" + headers + b"\r\n" + body


# -- Content-Length / Transfer-Encoding conflicts (RFC 9112 §6.1, §6.3) ------------------------
FRAMING_400 = {
    "cl-then-te": post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    "te-then-cl": post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"),
    "dup-cl-same": post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
    "dup-cl-diff": post(b"Content-Length: 5\r\nContent-Length: 0\r\n", b"hello"),
    "cl-plus": post(b"Content-Length: +5\r\n", b"hello"),
    "cl-minus": post(b"Content-Length: -1\r\n", b"hello"),
    "cl-hex": post(b"Content-Length: 0x5\r\n", b"hello"),
    "cl-list": post(b"Content-Length: 5, 5\r\n", b"hello"),
    "cl-two-numbers": post(b"Content-Length: 5 5\r\n", b"hello"),
    "cl-empty": post(b"Content-Length: \r\n", b"hello"),
    "cl-2^64": post(b"Content-Length: 18446744073709551616\r\n", b"hello"),
    "te-chunked-identity": post(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n"),
    "te-chunked-chunked": post(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n"),
    "te-twice": post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    "te-chunked-gzip": post(b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n"),
    "te-identity": post(b"Transfer-Encoding: identity\r\n", b"0\r\n\r\n"),
    "te-gzip": post(b"Transfer-Encoding: gzip\r\n", b"0\r\n\r\n"),
    "te-xchunked": post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"),
    "te-chunked-param": post(b"Transfer-Encoding: chunked;q=1\r\n", b"0\r\n\r\n"),
    "te-on-http10": post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n", b"1.0"),
    "te-on-http10-keepalive": post(b"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n",
                                   b"0\r\n\r\n", b"1.0"),
    "chunk-size-zz": post(b"Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-0x5": post(b"Transfer-Encoding: chunked\r\n", b"0x5\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-space": post(b"Transfer-Encoding: chunked\r\n", b"5 \r\nhello\r\n0\r\n\r\n"),
    "chunk-size-2^64": post(b"Transfer-Encoding: chunked\r\n", b"10000000000000000\r\n0\r\n\r\n"),
    "chunk-size-negative": post(b"Transfer-Encoding: chunked\r\n", b"-1\r\nhello\r\n0\r\n\r\n"),
    "chunk-data-no-crlf": post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhelloXX0\r\n\r\n"),
    "chunk-line-bare-lf": post(b"Transfer-Encoding: chunked\r\n", b"5\nhello\r\n0\r\n\r\n"),
    "bare-lf-request-line": b"GET /echo HTTP/1.1\nHost: x\r\n\r\n",
    "bare-lf-header": b"GET /echo HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n",
    "bare-lf-end-of-head": b"GET /echo HTTP/1.1\r\nHost: x\r\n\n",
    "bare-cr-header": b"GET /echo HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n",
    "cr-x-in-value": b"GET /echo HTTP/1.1\r\nHost: x\r\nX-A: \rx\r\n\r\n",
    "obs-fold": b"GET /echo HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n",
    "obs-fold-te": post(b"Transfer-Encoding:\r\n chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    "te-fold": post(b"Content-Length: 3\r\nX: 1\r\n Transfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    "cr-rx-end-of-head": b"GET /echo HTTP/1.1\r\nHost: x\r\n\rX",
    "leading-space-header": b"GET /echo HTTP/1.1\r\n Host: x\r\nHost: x\r\n\r\n",
    "sp-colon-te": post(b"Transfer-Encoding : chunked\r\nContent-Length: 3\r\n", b"0\r\n\r\n"),
    "space-before-colon-cl": post(b"Content-Length : 5\r\n", b"hello"),
}


@pytest.mark.parametrize("raw", FRAMING_400.values(), ids=FRAMING_400.keys())
def test_broken_framing_is_400_closed_and_nothing_smuggled(gw, up, raw):
    resps, closed = exchange(gw.port, raw + SMUGGLED)
    assert_rejected(resps, closed, 400)
    assert forwarded(gw.port, up) == []


def test_bad_chunk_after_request_was_forwarded_is_400_and_closed(gw, up):
    c = Conn(gw.port)
    c.send(post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n"))
    time.sleep(0.3)  # let the head go upstream, so the error hits a request in flight
    c.send(b"zz\r\nhello\r\n0\r\n\r\n" + SMUGGLED)
    closed = c.read_until_closed()
    c.close()
    assert_rejected(parse_responses(c.buf), closed, 400)
    assert "/smuggled" not in forwarded(gw.port, up)


ACCEPTED = {  # odd but valid: served, and any Content-Length upstream is re-framed
    "padded-cl": (post(b"Content-Length:  5 \r\n", b"hello"), 5),
    "zero-led-cl": (post(b"Content-Length: 005\r\n", b"hello"), 5),
    "body-at-limit": (post(b"Content-Length: 1000\r\n", b"b" * 1000), 1000),
    "http10-without-host": (b"GET /echo HTTP/1.0\r\n\r\n", 0),
    "leading-empty-line": (b"\r\n" + get("/echo"), 0),  # RFC 9112 §2.2: SHOULD be ignored
    "chunked-uppercase": (post(b"Transfer-Encoding: CHUNKED\r\n", b"5\r\nhello\r\n0\r\n\r\n"), 5),
}


@pytest.mark.parametrize(("raw", "body_len"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_odd_but_valid_requests_are_served(gw, up, raw, body_len):
    (r,), _ = exchange(gw.port, raw, 1)
    seen = json.loads(r.body)
    assert r.status == 200 and seen["body_len"] == body_len
    assert dict(seen["headers"]).get("content-length", str(body_len)) == str(body_len)


# -- keep-alive, pipelining, Connection: close (RFC 9112 §9.3, §9.6) ---------------------------
def test_pipelined_pair_answered_in_order(gw, up):
    resps, closed = exchange(gw.port, b"GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                             b"POST /echo?n=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
                             2)
    assert [r.status for r in resps] == [200, 200]
    assert [json.loads(r.body)["target"] for r in resps] == ["/echo?n=1", "/echo?n=2"]
    assert json.loads(resps[1].body)["body_len"] == 3
    assert not closed


@pytest.mark.parametrize(("second", "status"), [
    (FRAMING_400["cl-then-te"] + SMUGGLED, 400),
    (b"GET /echo RTSP/1.0\r\nHost: x\r\n\r\n", (400, 505)),  # not at the start of a read
], ids=["cl-te", "rtsp"])
def test_pipelined_good_then_broken_answers_the_good_one_first(gw, up, second, status):
    resps, closed = exchange(gw.port, get("/echo?n=1") + second)
    assert [r.status for r in resps][:1] == [200] and len(resps) == 2, [r.status for r in resps]
    assert_problem(resps[1], status)
    assert closed
    assert forwarded(gw.port, up) == ["/echo?n=1"]


@pytest.mark.parametrize("first", [
    b"GET /echo?first HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /echo?first HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n",
    b"GET /echo?first HTTP/1.0\r\nHost: x\r\n\r\n",
], ids=["close", "close-in-list", "http10"])
@pytest.mark.parametrize("rest", [SMUGGLED, b"\x00\xffjunk\r\n\r\n"], ids=["request", "junk"])
def test_bytes_after_connection_close_are_ignored(gw, up, first, rest):
    resps, closed = exchange(gw.port, first + rest)
    assert [r.status for r in resps] == [200]
    assert resps[0].headers.get("connection") == "close"
    assert closed
    assert forwarded(gw.port, up) == ["/echo?first"]


# -- Upgrade (facts §5): never parse an upgrade's body as requests -----------------------------
ADMIN = b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
UPGRADE_WITH_BODY = {
    "post-websocket-cl": b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                         b"Upgrade: websocket\r\nContent-Length: %d\r\n\r\n" % len(ADMIN) + ADMIN,
    "get-websocket-cl": b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n"
                        b"Upgrade: websocket\r\nContent-Length: %d\r\n\r\n" % len(ADMIN) + ADMIN,
    "post-h2c-chunked": b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(ADMIN) + ADMIN
                        + b"\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("raw", UPGRADE_WITH_BODY.values(), ids=UPGRADE_WITH_BODY.keys())
@pytest.mark.parametrize("split", [False, True], ids=["one-write", "body-later"])
def test_upgrade_with_body_is_rejected_and_body_never_parsed(gw, up, raw, split):
    head, _, body = raw.partition(b"\r\n\r\n")
    c = Conn(gw.port)
    c.send(head + b"\r\n\r\n" + (b"" if split else body))
    if split:
        c.responses(1)  # rejected on the head alone; the body arrives afterwards
        c.send(body)
    closed = c.read_until_closed()
    c.close()
    assert_rejected(parse_responses(c.buf), closed, 400)
    assert forwarded(gw.port, up) == []


def test_h2c_upgrade_is_served_as_plain_http_then_closed(gw, up):
    resps, closed = exchange(gw.port, b"GET /echo HTTP/1.1\r\nHost: x\r\n"
                             b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                             b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
                             b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SMUGGLED)
    assert [r.status for r in resps] == [200]
    assert resps[0].headers.get("connection") == "close" and "upgrade" not in resps[0].headers
    assert closed
    names = [n for n, _ in json.loads(resps[0].body)["headers"]]
    assert "upgrade" not in names and "http2-settings" not in names
    assert forwarded(gw.port, up) == ["/echo"]


# -- Expect (RFC 9110 §10.1.1) -------------------------------------------------------------
@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_expect_100_continue_gets_interim_then_final(gw, up, version):
    c = Conn(gw.port)
    c.send(post(b"Content-Length: 5\r\nExpect: 100-continue\r\n", b"", version))
    deadline = time.monotonic() + (2 if version == b"1.1" else 0.5)
    while b"\r\n\r\n" not in c.buf and not c.closed and time.monotonic() < deadline:
        c._recv(deadline - time.monotonic())
    if version == b"1.1":  # the 100 alone: no final response before the body was sent
        assert c.buf.startswith(b"HTTP/1.1 100 Continue\r\n") and c.buf.count(b"HTTP/") == 1
    else:  # RFC 9110 §10.1.1, §15.2: a 1.0 client's expectation is ignored; never a 1xx to it
        assert c.buf == b"", c.buf[:200]
    c.send(b"hello")
    resps = c.responses(1)
    c.close()
    assert [r.status for r in resps] == ([100, 200] if version == b"1.1" else [200])
    assert json.loads(resps[-1].body)["body_len"] == 5


@pytest.mark.parametrize(("headers", "status", "close"), [
    (b"Content-Length: 5\r\nExpect: 100-continue-please\r\n", (400, 417), False),
    (b"Content-Length: 5000\r\nExpect: 100-continue\r\n", 413, True),  # 413 instead of a 100
], ids=["unknown-expectation", "oversized-length"])
def test_expectation_refused_with_one_final_4xx(gw, up, headers, status, close):
    resps, closed = exchange(gw.port, post(headers, b""), None if close else 1)
    assert_rejected(resps, closed, status, must_close=close)  # exactly one response: no 100
    assert forwarded(gw.port, up) == []


# -- trailers and '_' names (facts §1, §2) ---------------------------------------------------
def test_trailers_never_override_headers(gw, up):
    (r,), _ = exchange(gw.port, post(
        b"Transfer-Encoding: chunked\r\nAuthorization: Bearer good\r\n",
        b"5\r\nhello\r\n0\r\nHost: evil.example\r\nAuthorization: Bearer evil\r\n"
        b"X-Forwarded-For: 6.6.6.6\r\nX-Trailer: t\r\n\r\n"), 1)
    seen = json.loads(r.body)
    assert r.status == 200 and seen["body_len"] == 5
    text, names = json.dumps(seen["headers"]), dict(seen["headers"])
    assert "evil" not in text and "6.6.6.6" not in text
    assert "x-trailer" not in names
    assert names.get("authorization") in (None, "Bearer good")
    assert names["x-forwarded-host"] == "x"


def test_header_names_with_underscore_are_not_forwarded(gw, up):
    (r,), _ = exchange(gw.port, b"GET /echo HTTP/1.1\r\nHost: x\r\nX_Api_User: admin\r\n"
                       b"X_Forwarded_For: 7.7.7.7\r\nContent_Length: 5\r\n"
                       b"Transfer_Encoding: chunked\r\n\r\n", 1)
    assert r.status == 200
    headers = json.loads(r.body)["headers"]
    assert [n for n, _ in headers if "_" in n] == []
    assert "7.7.7.7" not in json.dumps(headers)
