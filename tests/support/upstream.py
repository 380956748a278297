"""A real upstream HTTP/1.1 server for tests, built on h11 (a parser independent of llhttp).

It runs its own asyncio loop in a thread on 127.0.0.1 and records every request it parsed and
every connection it accepted, so tests can assert what reached the upstream (and what did not).

Paths:
  /echo...        JSON: method, target, headers, body length and sha256
  /big?n=N[&chunked=1]  N bytes of 'x' (Content-Length, or chunked)
  /slow?ms=N      answers after N ms
  /status?code=N  empty response with that status
  /close          answers with Connection: close and closes
  /ws             WebSocket-style upgrade: answers 101, then echoes raw bytes
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import h11


@dataclass
class Seen:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body_len: int = 0

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n == name.lower():
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name.lower()]


@dataclass
class Upstream:
    name: str = "up"
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    health_status: int = 200  # what GET /healthz answers (active health check tests)
    force_status: int | None = None  # when set, every other request is answered with it
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.AbstractServer | None = None
    _thread: threading.Thread | None = None
    _writers: set = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Upstream:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, self.port))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for w in list(self._writers):
                w.close()

        fut = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        fut.result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop = None

    def paths(self) -> list[str]:
        return [r.target for r in self.requests]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                seen, body = await self._read_request(conn, reader)
                if seen is None:
                    break
                if seen.target.startswith("/ws"):
                    await self._websocket(conn, writer, reader)
                    break
                await self._respond(conn, writer, seen, body)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    break
                conn.start_next_cycle()
        except (h11.RemoteProtocolError, ConnectionError, h11.LocalProtocolError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _read_request(self, conn: h11.Connection, reader: asyncio.StreamReader):
        seen = None
        h = hashlib.sha256()
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and seen is None:
                    return None, None
                continue
            if isinstance(ev, h11.Request):
                seen = Seen(ev.method.decode(), ev.target.decode(),
                            [(n.decode().lower(), v.decode("latin-1")) for n, v in ev.headers])
                self.requests.append(seen)
            elif isinstance(ev, h11.Data):
                seen.body_len += len(ev.data)
                h.update(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                return seen, h.hexdigest()
            elif isinstance(ev, h11.ConnectionClosed):
                return None, None

    async def _respond(self, conn, writer, seen: Seen, digest: str) -> None:
        u = urlsplit(seen.target)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        headers = [("X-Upstream", self.name)]
        if self.force_status is not None and u.path != "/healthz":
            headers.append(("Content-Length", "0"))
            writer.write(conn.send(h11.Response(status_code=self.force_status, headers=headers)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            return
        if u.path.startswith("/slow"):
            await asyncio.sleep(int(q.get("ms", "100")) / 1000)
        if u.path.startswith("/big"):
            n = int(q.get("n", "0"))
            chunked = q.get("chunked") == "1"
            if not chunked:
                headers.append(("Content-Length", str(n)))
            else:
                headers.append(("Transfer-Encoding", "chunked"))
            writer.write(conn.send(h11.Response(status_code=200, headers=headers)))
            block = b"x" * 65536
            left = n
            while left > 0:
                part = block[: min(left, len(block))]
                left -= len(part)
                writer.write(conn.send(h11.Data(data=part)))
                await writer.drain()
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            return
        if u.path.startswith("/status") or u.path == "/healthz":
            code = self.health_status if u.path == "/healthz" else int(q.get("code", "204"))
            if code not in (204, 304):
                headers.append(("Content-Length", "0"))
            writer.write(conn.send(h11.Response(status_code=code, headers=headers)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            return
        if u.path.startswith("/close"):
            headers.append(("Connection", "close"))
        body = json.dumps({
            "upstream": self.name, "method": seen.method, "target": seen.target,
            "headers": seen.headers, "body_len": seen.body_len, "sha256": digest,
        }).encode()
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        writer.write(conn.send(h11.Response(status_code=200, headers=headers)))
        if seen.method != "HEAD":
            writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()

    async def _websocket(self, conn, writer, reader) -> None:
        writer.write(conn.send(h11.InformationalResponse(
            status_code=101, headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")])))
        await writer.drain()
        data, _ = conn.trailing_data
        if data:
            writer.write(data)
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()


def _serve_forever(name: str) -> None:
    """`python -m tests.support.upstream NAME`: one upstream in its own process (tests that
    stop a target by PID); prints its port, serves until SIGTERM. SIGUSR1 makes it answer
    every request but /healthz with 503 (a failing service), SIGUSR2 heals it."""
    import signal
    import sys

    up = Upstream(name).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: setattr(up, "force_status", 503))
    signal.signal(signal.SIGUSR2, lambda *_: setattr(up, "force_status", None))
    print(up.port, flush=True)
    stop.wait(600)  # bounded: a forgotten process ends by itself
    up.stop()
    sys.exit(0)


if __name__ == "__main__":
    import sys

    _serve_forever(sys.argv[1] if len(sys.argv) > 1 else "up")
