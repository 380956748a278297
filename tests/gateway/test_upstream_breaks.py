"""A target that breaks the connection before answering (tests/support/bad_upstream.py), next to
a healthy one: an idempotent request is retried on the other target, a non-idempotent one that
may have reached the broken target is answered 502 and never sent twice, a target dying
between its answer's head and body is retried like one dying before its head, and an answer
cut mid-body cuts the client connection (it has started: nothing can be retried).

Regression: a connection the target accepted and closed before the gateway's connect coroutine
resumed was used anyway; the request went nowhere and the client got a 504 after `read_s`
instead of an answer from the other target (the flaky SIGKILL fault case)."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator

import pytest

from tests.gateway.conftest import plain_config
from tests.support.bad_upstream import BadUpstream

BEFORE_ANSWER = ("close_on_accept", "reset_on_accept", "close_after_request",
                 "reset_after_request")


@pytest.fixture(params=BEFORE_ANSWER)
def bad(request: pytest.FixtureRequest) -> Iterator[BadUpstream]:
    up = BadUpstream(request.param).start()
    yield up
    up.stop()


def _config(bad_url: str, good_url: str) -> dict:
    cfg = plain_config(bad_url, good_url)
    # Keep the broken target in rotation (round robin): every second request meets it first.
    cfg["upstreams"][0]["health"] = {"max_failures": 1000}
    cfg["upstreams"][0]["timeouts"] = {"connect_s": 1, "read_s": 3}
    return cfg


def _request(conn: http.client.HTTPConnection, method: str,
             body: bytes | None = None) -> tuple[int, float]:
    t0 = time.monotonic()
    conn.request(method, "/echo", body=body)
    r = conn.getresponse()
    r.read()
    return r.status, time.monotonic() - t0


@pytest.mark.parametrize("keep_alive", [False, True], ids=["new_connections", "keep_alive"])
def test_get_is_retried_on_the_other_target(bad, upstream, gateway_factory, keep_alive):
    gw = gateway_factory(_config(bad.url, upstream.url))
    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    answers = []
    for _ in range(10):
        if not keep_alive:
            c.close()
        answers.append(_request(c, "GET"))
    c.close()
    assert [s for s, _ in answers] == [200] * 10, (bad.mode, answers)
    # Answered by the other target at once, not after the read timeout (3 s).
    assert max(t for _, t in answers) < 1.5, answers
    assert bad.accepted >= 5
    assert len(upstream.requests) == 10
    retried = [line.get("retried") for line in gw.access_log(wait_for=10)]
    assert sum(r is not None for r in retried) >= 5, retried


def test_post_that_may_have_reached_the_target_is_502_and_never_sent_twice(
        bad, upstream, gateway_factory):
    gw = gateway_factory(_config(bad.url, upstream.url))
    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    answers = []
    for _ in range(10):
        answers.append(_request(c, "POST", b"x" * 10))
        if answers[-1][0] != 200:
            c.close()
    c.close()
    statuses = [s for s, _ in answers]
    assert set(statuses) <= {200, 502}, answers
    assert max(t for _, t in answers) < 1.5, answers
    assert statuses.count(200) == len(upstream.requests)  # nothing reached the good one twice
    if bad.mode.endswith("after_request"):
        # Each POST the broken target read is answered 502, and none was sent again.
        assert len(bad.requests) == 5 and statuses.count(502) == 5, (bad.mode, statuses)
    else:
        # Closed before reading: a POST whose bytes were never written may go to the other
        # target (connect_reset), one written into the dying connection may not.
        assert bad.requests == []


def _raw_get(port: int) -> bytes:
    """One GET on a new connection; everything read until the gateway closes or the healthy
    target's whole answer is in."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    try:
        while not (b"X-Upstream: a" in got and got.endswith(b"}")):
            part = s.recv(65536)
            if not part:
                break
            got += part
    except ConnectionResetError:
        pass
    finally:
        s.close()
    return got


def test_target_dying_after_its_head_before_its_body_is_retried(upstream, gateway_factory):
    """The head of a Content-Length answer is held until body bytes come: the target closed
    after sending only the head, so nothing had reached the client and a GET goes to the
    other target (before: the client got the head, then a cut connection)."""
    bad = BadUpstream("head_then_close").start()
    try:
        gw = gateway_factory(_config(bad.url, upstream.url))
        answers = [_raw_get(gw.port) for _ in range(4)]
        assert all(a.startswith(b"HTTP/1.1 200") and b"X-Upstream: a" in a for a in answers), \
            answers
        assert len(bad.requests) == 2  # round robin: every second request met it first
        assert len(upstream.requests) == 4
    finally:
        bad.stop()


def test_post_answer_cut_after_its_head_is_502_not_sent_twice(upstream, gateway_factory):
    bad = BadUpstream("head_then_close").start()
    try:
        gw = gateway_factory(_config(bad.url, upstream.url))
        c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        statuses = []
        for _ in range(4):
            statuses.append(_request(c, "POST", b"x")[0])
            if statuses[-1] != 200:
                c.close()
        c.close()
        assert sorted(statuses) == [200, 200, 502, 502], statuses
        assert len(bad.requests) == 2 and len(upstream.requests) == 2
    finally:
        bad.stop()


def test_answer_cut_mid_body_cuts_the_client_connection(upstream, gateway_factory):
    """Once body bytes went out the answer has started: the client sees the cut (the
    promised 100 bytes never come), never a retry spliced into it."""
    bad = BadUpstream("part_then_close").start()
    try:
        gw = gateway_factory(_config(bad.url, upstream.url))
        answers = [_raw_get(gw.port) for _ in range(2)]
        cut = [a for a in answers if b"X-Upstream" not in a]
        assert len(cut) == 1, answers
        head, _, body = cut[0].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 100" in head, cut
        assert body == b"x" * 10, cut
        assert len(bad.requests) == 1
        assert len(upstream.requests) == 1  # not retried once the answer had started
    finally:
        bad.stop()


def test_client_half_closing_while_the_answer_streams_is_closed_after_it(gateway_factory):
    """Found by `make fuzz` (a half-closed pipeline left open for 5 s): a client that shuts
    down its sending side after the answer's head was read from the upstream, before its body,
    got the whole answer but the connection stayed open until the keep-alive timeout: the
    keep-alive decision taken with the head ignored the EOF that came after it."""
    slow = BadUpstream("body_later").start()
    try:
        gw = gateway_factory(plain_config(slow.url))
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.15)  # the head is in the gateway, the body 0.15 s away
        s.shutdown(socket.SHUT_WR)
        got = b""
        t0 = time.monotonic()
        try:
            while True:
                part = s.recv(65536)
                if not part:
                    break
                got += part
        except TimeoutError:
            pass
        finally:
            s.close()
        took = time.monotonic() - t0
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"\r\n\r\nhello"), got
        assert took < 2.0, took  # closed after the answer, not at the recv timeout (5 s)
    finally:
        slow.stop()
