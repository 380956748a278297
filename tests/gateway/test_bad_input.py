"""Raw-socket suite, part two (helpers in test_framing): limits, timeouts, bad request lines and
headers, the upstream side (a hand-written raw upstream), garbage (issue 2 §3, §7, Bad input)."""

from __future__ import annotations

import contextlib
import json
import random
import select
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.gateway.conftest import plain_config
from tests.gateway.test_framing import (
    SMUGGLED,
    Conn,
    assert_problem,
    assert_rejected,
    exchange,
    forwarded,
    get,
    parse_responses,
    post,
)
from tests.support.gateway import GatewayProcess
from tests.support.upstream import Upstream

RAW_BODY = bytes(range(256)) * 400
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
MALFORMED = {
    "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "obs-fold": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n 2\r\n\r\nok",
    "cl-and-te": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"0\r\n\r\n",
    "dup-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    "cr-in-header": b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok",
    "nul-in-header": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "status-1000": b"HTTP/1.1 1000 OK\r\nContent-Length: 2\r\n\r\nok",
    "status-2-digits": b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
    "not-http": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "101-without-upgrade": b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    "no-answer": b"",  # closes without a byte
    "1mib-header": OK[:17] + b"X-Big: " + b"a" * (1 << 20) + b"\r\n" + OK[17:],  # too big a head
    "50000-headers": OK[:17] + b"X-A: v\r\n" * 50_000 + OK[17:],
    "head-just-over-64kib": OK[:17] + b"X-Big: " + b"a" * (64 * 1024) + b"\r\n" + OK[17:],
    "300-small-headers": OK[:17] + b"X-A: v\r\n" * 300 + OK[17:],  # within 64 KiB, over 256
    # Transfer codings other than chunked cannot be relayed once TE (hop-by-hop) is stripped.
    "te-gzip-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "te-gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
}
PARTIAL_CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n"
                   + RAW_BODY[:1000] + b"\r\n")
# path -> (what the raw upstream sends, close after); a tuple of parts is sent 50 ms apart
SCRIPT: dict[str, tuple[bytes | tuple[bytes, ...], bool]] = {
    "/raw/ok": (OK, False),
    "/raw/ok-other-body": (OK[:-2] + b"no", False),  # the same head, another body
    "/raw/ok-split": ((OK[:-2], OK[-2:]), False),     # the same head, the body in a second read
    "/raw/ok-short": (OK[:-1], True),                  # the same head, a body cut short
    # Other heads the parser reads while the last repeatable one stays remembered: after an
    # interim response, and an HTTP/1.0 keep-alive answer.
    "/raw/continue-more-fields": (b"HTTP/1.1 100 Continue\r\n\r\n" + OK[:17] + b"X-Extra: 1\r\n"
                                  + OK[17:], False),
    "/raw/http10-keep-alive-more-fields": (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                                           b"X-Extra: 1\r\nContent-Length: 2\r\n\r\nok", False),
    # The whole answer in one write: the gateway's first read holds the head and a large body.
    "/raw/big-first-read": (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (3 * len(RAW_BODY))
                            + RAW_BODY * 3, False),
    "/raw/ok-more-fields": (OK[:17] + b"X-Extra: 1\r\nConnection: keep-alive\r\n" + OK[17:], False),
    "/raw/chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                     False),
    "/raw/close-listed": (OK[:17] + b"Connection: x-hop\r\nX-Hop: secret\r\n" + OK[17:], False),
    "/raw/continue": (b"HTTP/1.1 100 Continue\r\n\r\n" + OK, False),
    "/raw/early-hints": (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + OK, False),
    "/raw/until-close": (b"HTTP/1.1 200 OK\r\nContent-Type: a/b\r\n\r\n" + RAW_BODY, True),
    "/raw/http10-until-close": (b"HTTP/1.0 200 OK\r\n\r\n" + RAW_BODY, True),
    "/raw/truncated-length": (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(RAW_BODY)
                              + RAW_BODY[:1000], True),
    "/raw/truncated-chunked": (PARTIAL_CHUNKED, True),
    "/raw/bad-chunk-mid-body": (PARTIAL_CHUNKED + b"zz\r\n", False),
    "/raw/extra-response": (OK + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil", False),
    "/raw/204-body": (b"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nevil", False),
    "/raw/close-extra": (OK[:17] + b"Connection: close\r\n" + OK[17:] + b"GARBAGE", True),
    **{f"/raw/malformed/{k}": (v, True) for k, v in MALFORMED.items()},
}


class RawHandler(socketserver.BaseRequestHandler):
    """Answers from SCRIPT with hand-written bytes (no HTTP library); requests carry no body."""

    def handle(self) -> None:
        server: RawUpstream = self.server  # type: ignore[assignment]
        server.connections += 1
        n, buf = server.connections, b""
        with contextlib.suppress(OSError):
            while True:
                while b"\r\n\r\n" not in buf:
                    if not (data := self.request.recv(65536)):
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                method, target = head.decode("latin-1").split(" ", 2)[:2]
                server.seen.append((n, method, target))
                answer, close = SCRIPT[target]
                if method == "HEAD":
                    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                for i, part in enumerate(answer if isinstance(answer, tuple) else (answer,)):
                    if i:
                        time.sleep(0.05)
                    self.request.sendall(part)
                if close:
                    return


class RawUpstream(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RawHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.seen: list[tuple[int, str, str]] = []  # (connection number, method, target)
        self.connections = 0
        threading.Thread(target=self.serve_forever, args=(0.1,), daemon=True).start()


@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    yield (u := Upstream("a").start())
    u.stop()


@pytest.fixture(scope="module")
def raw() -> Iterator[RawUpstream]:
    yield (r := RawUpstream())
    r.shutdown()
    r.server_close()


@pytest.fixture(scope="module")
def gw(up: Upstream, raw: RawUpstream, tmp_path_factory: pytest.TempPathFactory,
       ) -> Iterator[GatewayProcess]:
    cfg = plain_config(up.url)
    cfg["upstreams"].append({"name": "raw", "targets": [raw.url], "timeouts": {"read_s": 2},
                             "health": {"max_failures": 10_000}})  # many 502s on purpose
    cfg["routes"].append({**cfg["routes"][0], "name": "raw", "match": {"path_prefix": "/raw"},
                          "upstream": "raw"})
    cfg.update(limits={"max_body_bytes": 1000},
               timeouts={"header_s": 1, "body_s": 1, "keepalive_s": 1})
    yield (g := GatewayProcess(cfg, tmp_path_factory.mktemp("bad_input")).start())
    g.stop()


@pytest.fixture(autouse=True)
def _fresh_upstreams(up: Upstream, raw: RawUpstream) -> None:
    up.requests.clear()
    raw.seen.clear()


# -- size limits (issue 2 §3: 16 KiB head -> 431, header count, URL -> 414, body -> 413) -------
LIMITS = {
    "10000-headers": (b"GET /echo HTTP/1.1\r\nHost: x\r\n"
                      + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)) + b"\r\n", 431),
    "150-small-headers": (b"GET /echo HTTP/1.1\r\nHost: x\r\n"  # ~1.3 KiB, max_headers=100
                          + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n", 431),
    "10k-url": (b"GET /echo?" + b"q" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "cl-over-limit-no-body": (post(b"Content-Length: 1001\r\n", b""), 413),  # not after body_s
    "cl-2^63": (post(b"Content-Length: 9223372036854775808\r\n", b"x"), 413),
    "chunked-over-limit": (post(b"Transfer-Encoding: chunked\r\n", b"".join(
        b"190\r\n" + b"c" * 400 + b"\r\n" for _ in range(3)) + b"0\r\n\r\n"), 413),
}


@pytest.mark.parametrize(("raw_req", "status"), LIMITS.values(), ids=LIMITS.keys())
def test_limits(gw, up, raw_req, status):
    resps, closed = exchange(gw.port, raw_req + SMUGGLED)
    assert_rejected(resps, closed, status)
    assert forwarded(gw.port, up) == []


@pytest.mark.parametrize("first", [b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ",
                                   b"G", b"GET /echo HTTP/1.1\r\n"])
def test_oversized_head_in_slices_is_431_fast(gw, up, first):
    # `first` on its own read: the head's accounting must start whatever its first read held
    c = Conn(gw.port)
    t0 = time.monotonic()
    c.send(first)
    time.sleep(0.05)
    if first == b"G":
        c.send(b"ET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ")
    elif not first.endswith(b"X-Big: "):
        c.send(b"Host: x\r\nX-Big: ")
    for _ in range(64):  # a 256 KiB value in 4 KiB slices, as a slow client would send it
        if not c.send(b"a" * 4096):
            break
        time.sleep(0.002)  # separate reads, not one coalesced burst
    # The head never ends: the 431 must come from counting bytes as they arrive (a gateway
    # that only measured complete heads would answer 408 after header_s instead).
    closed = c.read_until_closed()
    elapsed = time.monotonic() - t0
    c.close()
    assert_rejected(parse_responses(c.buf), closed, 431)
    assert elapsed < 2.0
    assert forwarded(gw.port, up) == []


def test_chunked_body_streamed_over_limit_is_413(gw, up):
    c = Conn(gw.port)
    c.send(post(b"Transfer-Encoding: chunked\r\n", b"190\r\n" + b"c" * 400 + b"\r\n"))
    time.sleep(0.3)  # the request is in flight upstream when the limit is crossed
    c.send((b"190\r\n" + b"c" * 400 + b"\r\n") * 3)
    c.send(b"0\r\n\r\n")
    closed = c.read_until_closed()
    c.close()
    assert_rejected(parse_responses(c.buf), closed, 413)
    assert all(r.body_len <= 1000 for r in up.requests)


# -- timeouts (header_s=1, body_s=1, keepalive_s=1) --------------------------------------------
def trickle(port: int, first: bytes, pieces: list[bytes], gap: float,
            ) -> tuple[list, bool, float]:
    """Send `first`, then one piece per `gap` until the gateway speaks or closes."""
    c = Conn(port)
    c.send(first)
    t0 = time.monotonic()
    for piece in pieces:
        r, _, _ = select.select([c.sock], [], [], gap)
        if r or not c.send(piece):
            break
    c.read_until_closed(timeout=3.0)
    c.close()
    return parse_responses(c.buf), c.closed, time.monotonic() - t0


def test_slowloris_head_is_408_and_closed(gw, up):
    pieces = [b"X-Slow-%d: 1\r\n" % i for i in range(20)]  # one line per 0.3 s, forever
    resps, closed, elapsed = trickle(gw.port, b"GET /echo HTTP/1.1\r\nHost: x\r\n", pieces, 0.3)
    assert_rejected(resps, closed, 408)
    assert 0.9 < elapsed < 2.5
    assert forwarded(gw.port, up) == []


def test_slow_body_is_408_and_closed(gw, up):
    resps, closed, elapsed = trickle(gw.port, post(b"Content-Length: 10\r\n", b"a"), [b"a"] * 9,
                                     1.8)
    assert_rejected(resps, closed, 408)
    assert elapsed < 2.5


def test_body_with_short_gaps_is_not_timed_out(gw, up):
    (r,), _, _ = trickle(gw.port, post(b"Content-Length: 6\r\nConnection: close\r\n", b"a"),
                         [b"a"] * 5, 0.35)  # 1.75 s in total, but every gap is under body_s
    assert r.status == 200 and json.loads(r.body)["body_len"] == 6


def test_idle_keepalive_connection_is_closed(gw, up):
    c = Conn(gw.port)
    for i in range(2):
        c.send(b"GET /echo?i=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        assert [r.status for r in c.responses(i + 1)] == [200] * (i + 1)
        time.sleep(0.4 if i == 0 else 0)  # idle shorter than keepalive_s: still served
    t0 = time.monotonic()
    closed = c.read_until_closed(timeout=3.0)
    idle = time.monotonic() - t0
    c.close()
    assert closed and 0.5 < idle < 2.0


# -- request line, Host, header bytes, request target (RFC 9112 §3, §5; RFC 9110 §7.2) ---------
def req(line: bytes, headers: bytes = b"Host: x\r\n") -> bytes:
    return line + b"\r\n" + headers + b"\r\n"


BAD = {  # name: (request, allowed statuses, the connection must close)
    "http-1.2": (req(b"GET /echo HTTP/1.2"), (400, 505), True),
    "http-2.0": (req(b"GET /echo HTTP/2.0"), (400, 505), True),
    "lowercase-http": (req(b"GET /echo http/1.1"), (400, 505), True),
    "http-0.9": (b"GET /echo\r\n\r\n", (400, 505), True),
    "rtsp": (req(b"GET /echo RTSP/1.0"), (400, 505), True),
    "ice": (req(b"GET /echo ICE/1.0"), (400, 505), True),
    "unknown-method": (req(b"FOO /echo HTTP/1.1"), (400, 501), True),
    "lowercase-method": (req(b"get /echo HTTP/1.1"), (400, 501), True),
    "llhttp-only-method": (req(b"PROPFIND /echo HTTP/1.1"), (400, 405, 501), True),
    "pri": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", (400, 505), True),
    "connect": (req(b"CONNECT x:443 HTTP/1.1", b"Host: x:443\r\n"), (400, 405), True),
    "connect-origin-form": (req(b"CONNECT /echo HTTP/1.1"), (400, 405), True),
    "no-host": (req(b"GET /echo HTTP/1.1", b""), 400, True),
    "two-hosts": (req(b"GET /echo HTTP/1.1", b"Host: x\r\nHost: y\r\n"), 400, True),
    "host-a-b/c@d": (req(b"GET /echo HTTP/1.1", b"Host: a b/c@d\r\n"), 400, True),
    "host-userinfo": (req(b"GET /echo HTTP/1.1", b"Host: user@x\r\n"), 400, True),
    "nul-in-value": (req(b"GET /echo HTTP/1.1", b"Host: x\r\nX-A: a\x00b\r\n"), 400, True),
    "cr-in-value": (req(b"GET /echo HTTP/1.1", b"Host: x\r\nX-A: a\rb\r\n"), 400, True),
    "del-in-value": (req(b"GET /echo HTTP/1.1", b"Host: x\r\nX-A: a\x7fb\r\n"), 400, True),
    "ctl-in-value": (req(b"GET /echo HTTP/1.1", b"Host: x\r\nX-A: a\x01b\r\n"), 400, True),
    "space-before-colon": (req(b"GET /echo HTTP/1.1", b"Host: x\r\nX-A : 1\r\n"), 400, True),
    "space-in-name": (req(b"GET /echo HTTP/1.1", b"Host: x\r\nX A: 1\r\n"), 400, True),
    "empty-name": (req(b"GET /echo HTTP/1.1", b"Host: x\r\n: 1\r\n"), 400, True),
    "no-colon": (req(b"GET /echo HTTP/1.1", b"Host: x\r\nX-A\r\n"), 400, True),
    "at-in-name": (req(b"GET /echo HTTP/1.1", b"Host: x\r\nX@A: 1\r\n"), 400, True),
    "absolute-form": (req(b"GET http://evil.example/echo HTTP/1.1"), 400, True),
    "asterisk-get": (req(b"GET * HTTP/1.1"), 400, True),
    "relative-target": (req(b"GET echo HTTP/1.1"), 400, True),
    "tab-in-target": (req(b"GET /ec\tho HTTP/1.1"), 400, True),
    "non-ascii-target": (req(b"GET /\xc3\xa9cho HTTP/1.1"), 400, True),
    "fragment": (req(b"GET /echo#frag HTTP/1.1"), 400, False),
    "encoded-slash": (req(b"GET /echo%2fadmin HTTP/1.1"), 400, False),
    "encoded-slash-upper": (req(b"GET /echo%2Fadmin HTTP/1.1"), 400, False),
    "encoded-nul": (req(b"GET /echo%00 HTTP/1.1"), 400, False),
    "encoded-backslash": (req(b"GET /echo%5cadmin HTTP/1.1"), 400, False),
    "backslash": (req(b"GET /echo\\admin HTTP/1.1"), 400, False),
    "bad-percent": (req(b"GET /echo%zz HTTP/1.1"), 400, False),
}


@pytest.mark.parametrize(("raw_req", "status", "close"), BAD.values(), ids=BAD.keys())
def test_bad_request_is_rejected_and_never_forwarded(gw, up, raw_req, status, close):
    # A trailing request only counts as smuggled when the gateway must have closed before it.
    resps, closed = exchange(gw.port, raw_req + (SMUGGLED if close else b""), None if close else 1)
    assert_rejected(resps, closed, status, must_close=close)
    assert forwarded(gw.port, up) == []


def test_rejection_is_logged_once(gw, up):
    resps, closed = exchange(gw.port, post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b""))
    rid = assert_rejected(resps, closed, 400)["request_id"]
    later_id = exchange(gw.port, get("/echo"), 1)[0][0].headers["x-request-id"]
    lines: list[dict] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not any(x["request_id"] == later_id for x in lines):
        time.sleep(0.05)  # the worker flushes its access log on the 0.25 s sweep
        lines = gw.access_log(wait_for=1)
    mine = [x for x in lines if x["request_id"] == rid]
    assert len(mine) == 1 and mine[0]["status"] == 400, mine


# -- the upstream side (facts §6), against the raw upstream ------------------------------------
def test_head_with_content_length_then_next_request_on_same_connection(gw, raw):
    c = Conn(gw.port)
    c.send(get("/raw/ok", "HEAD"))
    c.responses(1, methods=["HEAD"])
    c.send(get("/raw/ok"))
    resps = c.responses(2, methods=["HEAD", "GET"])
    c.close()
    assert [(r.status, r.body) for r in resps] == [(200, b""), (200, b"ok")]
    assert resps[0].headers["content-length"] == "5"
    assert [(m, t) for _, m, t in raw.seen] == [("HEAD", "/raw/ok"), ("GET", "/raw/ok")]
    assert raw.seen[0][0] == raw.seen[1][0], "the upstream connection was not reused"


@pytest.mark.parametrize("path", ["/raw/continue", "/raw/early-hints", "/raw/extra-response",
                                  "/raw/204-body", "/raw/close-extra"])  # facts §6 for the last
def test_interim_or_extra_upstream_bytes_yield_one_final_response(gw, raw, path):
    c = Conn(gw.port)
    c.send(get(path))
    c.responses(1)
    c.send(get("/raw/ok"))  # the client connection is still in sync afterwards
    resps = c.responses(2)
    c.close()
    # A 204 "with a body" may be relayed or refused whole (502); never may "evil" leak through.
    allowed = [(204, b""), (502, b"")] if "204" in path else [(200, b"ok")]
    finals = [(r.status, r.body if r.status < 500 else b"") for r in resps if r.status >= 200]
    assert finals[:1] in [[a] for a in allowed] and finals[1:] == [(200, b"ok")], finals
    assert b"evil" not in c.buf


def test_large_answer_in_one_upstream_write_is_relayed_whole(gw, raw):
    resps, _ = exchange(gw.port, get("/raw/big-first-read"), 1)
    assert [r.status for r in resps] == [200] and resps[0].body == RAW_BODY * 3


def test_changing_upstream_heads_on_one_connection_are_each_rewritten(gw, raw):
    # Repeated heads reuse the last rewrite; every change must be noticed (framing included).
    paths = ["/raw/ok", "/raw/ok", "/raw/ok-more-fields", "/raw/chunked", "/raw/close-listed",
             "/raw/ok"]
    c = Conn(gw.port)
    for path in paths:
        c.send(get(path))
    resps = c.responses(len(paths))
    c.close()
    assert [(r.status, r.body) for r in resps] == [(200, b"ok")] * len(paths)
    assert [r.headers.get("x-extra") for r in resps] == [None, None, "1", None, None, None]
    assert "x-hop" not in resps[4].headers and b"secret" not in c.buf
    assert all(r.headers.get("connection") == "keep-alive" for r in resps)
    assert len({n for n, _, _ in raw.seen}) == 1, "the upstream connection was not reused"


@pytest.mark.parametrize("other", ["/raw/continue-more-fields",
                                   "/raw/http10-keep-alive-more-fields"])
def test_a_repeated_head_gets_its_own_rewrite_after_other_heads(gw, raw, other):
    # The head read in between (not itself repeatable) must not lend its fields to the next
    # repetition of the earlier head.
    c = Conn(gw.port)
    resps = []
    for path in ["/raw/ok", other, "/raw/ok"]:
        c.send(get(path))
        resps = c.responses(len(resps) + 1)
    c.close()
    assert [(r.status, r.body) for r in resps] == [(200, b"ok")] * 3
    assert [r.headers.get("x-extra") for r in resps] == [None, "1", None]
    assert len({n for n, _, _ in raw.seen}) == 1, "the upstream connection was not reused"


def test_repeated_upstream_heads_relay_each_body_and_still_catch_extra_bytes(gw, raw):
    # A whole response in one read with the last response's head is relayed without llhttp
    # (upstream/connection.py): its body must be its own, and anything that is not exactly
    # one such response must take the parser's path (split reads, extra bytes, a short body).
    paths = ["/raw/ok", "/raw/ok", "/raw/ok-other-body", "/raw/ok", "/raw/ok-split",
             "/raw/ok", "/raw/extra-response", "/raw/ok", "/raw/ok"]
    c = Conn(gw.port)
    resps = []
    for path in paths:  # one at a time: each answer is read before the next request goes up
        c.send(get(path))
        resps = c.responses(len(resps) + 1)
    c.close()
    assert [(r.status, r.body) for r in resps] == [
        (200, b"ok"), (200, b"ok"), (200, b"no"), (200, b"ok"), (200, b"ok"), (200, b"ok"),
        (200, b"ok"), (200, b"ok"), (200, b"ok")]
    assert b"evil" not in c.buf
    conns = [n for n, _, _ in raw.seen]
    assert len(set(conns[:7])) == 1, "the upstream connection was not reused"
    assert conns[7] != conns[6], "a connection that sent an extra response was reused"
    assert conns[8] == conns[7]
    # A body cut short after a repeated head: never passed off as complete.
    c = Conn(gw.port)
    c.send(get("/raw/ok"))
    c.responses(1)
    c.send(get("/raw/ok-short"))
    closed = c.read_until_closed()
    resps = [r for r in parse_responses(c.buf) if r.status >= 200]
    c.close()
    assert len(resps) == 2 and closed, (resps, closed)
    assert resps[1].status == 502 or not resps[1].complete, resps[1]


@pytest.mark.parametrize("path", ["/raw/until-close", "/raw/http10-until-close"])
@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_response_read_until_close_is_delivered_completely(gw, raw, path, version):
    resps, closed = exchange(gw.port, get(path, version=version), 1 if version == "1.1" else None)
    assert [r.status for r in resps] == [200] and resps[0].body == RAW_BODY
    assert resps[0].complete or (version == "1.0" and closed)


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_upstream_response_is_502(gw, raw, name):
    resps, _ = exchange(gw.port, get(f"/raw/malformed/{name}"), 1)
    assert len(resps) == 1, [r.status for r in resps]
    assert_problem(resps[0], 502)


@pytest.mark.parametrize("path", ["/raw/truncated-length", "/raw/truncated-chunked",
                                  "/raw/bad-chunk-mid-body"])
def test_upstream_failing_mid_body_aborts_the_client_connection(gw, raw, path):
    t0 = time.monotonic()
    resps, closed = exchange(gw.port, get(path), 1)  # returns at a complete response or a close
    assert resps, "nothing at all sent to the client"
    if resps[0].status != 502:  # the head went out: the only honest end is an aborted connection
        assert not resps[0].complete, "truncated body passed as complete"
        assert closed and time.monotonic() - t0 < 2.5, "client connection left hanging"


# -- garbage then good (issue 2 "Bad input") ---------------------------------------------------
VOCAB = [b"GET ", b"POST ", b"/echo", b" HTTP/1.1", b" HTTP/1.0", b"\r\n", b"\n", b"\r", b":", b" ",
         b"Host: x", b"Content-Length: ", b"Transfer-Encoding: chunked", b"0", b"5", b"ff", b"zz",
         b"\x00", b"\xff", b"Connection: close", b"Connection: Upgrade", b"Upgrade: websocket",
         b"Expect: 100-continue", b"hello", b";", b"\t", b"%", b"?", b"#", b"\r\n\r\n"]


def garbage(seed: int = 20261130) -> list[bytes]:
    rng = random.Random(seed)
    good = b"POST /echo?g=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    out = [rng.randbytes(rng.randint(1, 4096)) for _ in range(12)]
    for _ in range(12):
        m = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            m[rng.randrange(len(m))] = rng.randrange(256)
        out.append(bytes(m))
    out += [b"".join(rng.choice(VOCAB) for _ in range(rng.randint(1, 60))) for _ in range(16)]
    out += [rng.randbytes(300_000), good[:30], b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n" * 200]
    return out


def test_garbage_then_good_request(gw, up):
    pids = gw.worker_pids()
    log_start = len(gw.stderr())
    conns = []
    for i, payload in enumerate(garbage()):
        c = Conn(gw.port)
        c.sock.settimeout(0.5)
        c.send(payload)
        if i % 3 == 0:  # some vanish with a reset instead of a FIN
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        conns.append(c)
    deadline = time.monotonic() + 1.0
    for c in conns:
        c.read_until_closed(timeout=max(deadline - time.monotonic(), 0))
        c.close()
    assert [r.status for r in exchange(gw.port, get("/echo"), 1)[0]] == [200]  # not wedged
    assert gw.worker_pids() == pids  # not crashed (nor restarted)
    assert "Traceback" not in gw.stderr()[log_start:]


def test_repeated_fields_with_a_longer_target_still_count_toward_the_head_limit(gw, up):
    # The second head repeats the first one's fields (the gateway reuses their checks) and
    # arrives inside the first request's body read, where no byte cap applies before parsing:
    # only the head-size check itself can catch that target + fields exceed 16 KiB.
    fields = b"Host: x\r\nContent-Length: 1\r\nX-Pad: " + b"a" * 12_000 + b"\r\n\r\n"
    first = b"POST /echo HTTP/1.1\r\n" + fields
    second = b"POST /echo?" + b"q" * 6_000 + b" HTTP/1.1\r\n" + fields
    c = Conn(gw.port)
    c.send(first)
    time.sleep(0.05)
    c.send(b"x" + second + b"y")
    closed = c.read_until_closed()
    c.close()
    resps = parse_responses(c.buf)
    assert [r.status for r in resps] == [200, 431] and closed
    assert len(forwarded(gw.port, up)) == 1


def test_new_values_under_repeated_field_names_are_each_read(gw, up):
    # Heads that repeat the last one's field names with new values (a new token, a new
    # cookie) reuse its checks; a new Host, Content-Length or a head grown past 16 KiB must
    # still be seen. All on one connection, pipelined in one write.
    def head(host: bytes, length: int, pad: int) -> bytes:
        return (b"POST /echo HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: %d\r\n" % length
                + b"X-Token: " + b"t" * pad + b"\r\n\r\n" + b"b" * length)
    c = Conn(gw.port)
    c.send(head(b"x", 1, 10) + head(b"x", 1, 20) + head(b"y", 1, 20) + head(b"y", 3, 20)
           + head(b"y", 3, 5) + head(b"y", 3, 16_500))
    closed = c.read_until_closed()
    c.close()
    resps = parse_responses(c.buf)
    assert [r.status for r in resps] == [200, 200, 200, 200, 200, 431] and closed
    seen = up.requests[-5:]
    assert [r.header("x-forwarded-host") for r in seen] == ["x", "x", "y", "y", "y"]
    assert [r.body_len for r in seen] == [1, 1, 1, 3, 3]
    assert [len(r.header("x-token") or "") for r in seen] == [10, 20, 20, 20, 5]
