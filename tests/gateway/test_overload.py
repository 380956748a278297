"""limits.max_connections: a worker at its cap answers new connections 503 and closes them."""

from __future__ import annotations

import json
import socket
import time

from tests.admin.support import TOKEN, TOKEN_ENV, sample, scrape, wait_admin, with_admin
from tests.gateway.conftest import plain_config

REQ = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


def _read_answer(s: socket.socket) -> bytes:
    s.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _served(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(REQ)
    assert _read_answer(s).startswith(b"HTTP/1.1 200")
    return s


def test_connections_beyond_the_cap_get_503_and_close(upstream, gateway_factory, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    cfg = with_admin(plain_config(upstream.url))
    cfg["limits"] = {"max_connections": 4}
    gw = gateway_factory(cfg)
    wait_admin(cfg)
    held = [_served(gw.port) for _ in range(4)]
    extra = socket.create_connection(("127.0.0.1", gw.port))
    answer = _read_answer(extra)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), answer
    assert b"\r\nRetry-After: 1" in head and b"\r\nConnection: close" in head
    assert json.loads(body)["code"] == "overloaded"
    assert extra.recv(1) == b""  # closed by the gateway
    extra.close()
    assert len(upstream.requests) == 4  # the refused connection reached nothing
    # the held ones still work, and a slot freed is a slot for a new client
    held[0].sendall(REQ)
    assert _read_answer(held[0]).startswith(b"HTTP/1.1 200")
    held.pop().close()
    refused = 1
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", gw.port))
        s.sendall(REQ)
        got = _read_answer(s)
        s.close()
        if got.startswith(b"HTTP/1.1 200"):
            break
        refused += 1
        time.sleep(0.02)
    else:
        raise AssertionError("a freed slot was never reused")
    gw.wait_event("connections_capped")
    deadline = time.monotonic() + 3  # the counter is copied by the sweeper (every 0.25 s)
    while time.monotonic() < deadline:
        got_refused = sample(scrape(cfg), "wardgate_http_server_connections_refused_total")
        if got_refused == refused:
            break
        time.sleep(0.1)
    assert got_refused == refused
    for s in held:
        s.close()
