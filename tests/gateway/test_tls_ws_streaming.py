"""TLS on both sides, WebSocket tunnelling, and large bodies with bounded gateway memory."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import socket
import ssl
import threading
import time

import psutil
import pytest
import trustme
import websockets
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve

from tests.gateway.conftest import plain_config


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_tls_termination_with_test_ca(ca, upstream, gateway_factory, tmp_path):
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    cfg = plain_config(upstream.url)
    cfg["tls"] = {"cert": str(tmp_path / "server.pem"), "key": str(tmp_path / "server.pem")}
    gw = gateway_factory(cfg)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    c = http.client.HTTPSConnection("127.0.0.1", gw.port, context=ctx, timeout=5)
    c.request("GET", "/echo")
    r = c.getresponse()
    body = json.loads(r.read())
    assert r.status == 200
    assert dict(body["headers"])["x-forwarded-proto"] == "https"
    # Plain HTTP on the TLS port is not answered as HTTP.
    with socket.create_connection(("127.0.0.1", gw.port), timeout=3) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = s.recv(100)
        except (ConnectionResetError, TimeoutError):
            data = b""
        assert not data.startswith(b"HTTP/1.1 200")


def _https_upstream(ca: trustme.CA, tmp_path) -> tuple[int, threading.Event]:
    """A tiny TLS upstream (stdlib http.server) with a cert from the test CA."""
    import http.server

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            body = b"secure"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return srv


def test_https_upstream_verified_with_custom_ca(ca, gateway_factory, tmp_path):
    srv = _https_upstream(ca, tmp_path)
    try:
        port = srv.server_address[1]
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        cfg = plain_config(f"https://127.0.0.1:{port}")
        cfg["upstreams"][0]["tls"] = {"ca_file": str(tmp_path / "ca.pem")}
        gw = gateway_factory(cfg)
        c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
        c.request("GET", "/")
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"secure")

        # Without the CA the certificate is refused: 502, never a silent insecure fallback.
        cfg2 = plain_config(f"https://127.0.0.1:{port}")
        gw2 = gateway_factory(cfg2)
        c = http.client.HTTPConnection("127.0.0.1", gw2.port, timeout=5)
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        assert r.status == 502
    finally:
        srv.shutdown()


async def test_websocket_echo_through_tunnel(gateway_factory):
    async def echo(ws):
        async for msg in ws:
            await ws.send(msg)

    async with ws_serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        gw = await asyncio.to_thread(gateway_factory, plain_config(f"http://127.0.0.1:{port}"))
        async with ws_connect(f"ws://127.0.0.1:{gw.port}/chat") as ws:
            for msg in ("hello", "x" * 100_000, b"\x00\x01binary"):
                await ws.send(msg)
                assert await asyncio.wait_for(ws.recv(), 5) == msg


async def test_websocket_refused_when_route_disables_it(gateway_factory):
    async def echo(ws):
        await ws.send("should not happen")

    async with ws_serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        cfg = plain_config(f"http://127.0.0.1:{port}", websocket=False)
        gw = await asyncio.to_thread(gateway_factory, cfg)
        with pytest.raises(websockets.exceptions.InvalidStatus):
            async with ws_connect(f"ws://127.0.0.1:{gw.port}/chat", open_timeout=5):
                pass


def _worker(gw) -> psutil.Process:
    return psutil.Process(gw.worker_pids()[0])


@pytest.mark.slow
def test_50mib_upload_streams_with_bounded_memory(upstream, gateway_factory):
    cfg = plain_config(upstream.url)
    cfg["limits"] = {"max_body_bytes": "64MiB"}
    gw = gateway_factory(cfg)
    worker = _worker(gw)
    base = worker.memory_info().rss
    size = 50 * 1024 * 1024
    block = b"u" * (1024 * 1024)
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], worker.memory_info().rss)
            time.sleep(0.02)

    t = threading.Thread(target=sample)
    t.start()
    try:
        c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
        c.putrequest("POST", "/sink")
        c.putheader("Content-Length", str(size))
        c.endheaders()
        for _ in range(50):
            c.send(block)
        r = c.getresponse()
        body = json.loads(r.read())
    finally:
        done.set()
        t.join()
    assert body["body_len"] == size
    assert body["sha256"] == hashlib.sha256(block * 50).hexdigest()
    assert peak[0] - base < 20 * 1024 * 1024, f"worker grew by {(peak[0] - base) >> 20} MiB"


@pytest.mark.slow
def test_50mib_download_to_slow_client_with_bounded_memory(upstream, gateway_factory):
    gw = gateway_factory(plain_config(upstream.url))
    worker = _worker(gw)
    base = worker.memory_info().rss
    size = 50 * 1024 * 1024
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.sendall(b"GET /big?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
    got = 0
    peak = base
    h = b""
    while b"\r\n\r\n" not in h:
        h += s.recv(65536)
    got = len(h.split(b"\r\n\r\n", 1)[1])
    first_phase = time.monotonic()
    while got < size:
        data = s.recv(256 * 1024)
        if not data:
            break
        got += len(data)
        if time.monotonic() - first_phase < 1.5:
            time.sleep(0.01)  # slow reader for a while: the gateway must not buffer it all
            peak = max(peak, worker.memory_info().rss)
    s.close()
    assert got == size
    assert peak - base < 20 * 1024 * 1024, f"worker grew by {(peak - base) >> 20} MiB"
