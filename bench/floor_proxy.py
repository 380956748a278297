"""The floor of any uvloop + httptools proxy: parse, forward, relay, and nothing else.

Not a proxy to use: no checks, no limits, no header rewriting beyond the framing, no pooling
(one upstream connection per client connection), GET-like requests without bodies and
Content-Length responses only. `bench/run.py --only nginx,wardgate,floor` runs it side by
side with the others on the plain scenario, to show how much of the gap between wardgate
and nginx is the architecture (event loop, parser callbacks, system calls) and how much is
wardgate's own per-request work.

    python bench/floor_proxy.py LISTEN_PORT UPSTREAM_PORT
"""

from __future__ import annotations

import asyncio
import sys

import httptools
import uvloop


class Upstream(asyncio.Protocol):
    def __init__(self, client: Client) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)
        self.fields: list[bytes] = []
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append(name + b": " + value + b"\r\n")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        head = b"HTTP/1.1 %d OK\r\n" % self.parser.get_status_code() + b"".join(self.fields)
        self.client.transport.write(head + b"\r\n" + b"".join(self.body))
        self.fields, self.body = [], []


class Client(asyncio.Protocol):
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.fields: list[bytes] = []
        self.upstream: Upstream | None = None
        self.waiting: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, up = await loop.create_connection(lambda: Upstream(self), "127.0.0.1",
                                             self.upstream_port)
        self.upstream = up
        for request in self.waiting:
            up.transport.write(request)  # type: ignore[attr-defined]
        self.waiting = []

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.transport.close()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() != b"connection":
            self.fields.append(name + b": " + value + b"\r\n")

    def on_message_complete(self) -> None:
        request = (self.parser.get_method() + b" " + self.url + b" HTTP/1.1\r\n"
                   + b"".join(self.fields) + b"\r\n")
        self.url, self.fields = b"", []
        if self.upstream is None:
            self.waiting.append(request)
        else:
            self.upstream.transport.write(request)  # type: ignore[attr-defined]


async def serve(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(upstream_port), "127.0.0.1", port,
                                      backlog=4096)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), int(sys.argv[2])))
