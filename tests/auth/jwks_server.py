"""A tiny real HTTP/1.1 server on 127.0.0.1 for key-set tests: serves JSON documents by path,
counts hits, honours If-None-Match, and can be switched to failing."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any


class JwksServer:
    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}
        self.headers: dict[str, str] = {}
        self.hits: dict[str, int] = {}
        self.conditional: int = 0
        self.fail_status: int | None = None
        self.delay_s = 0.0
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def total_hits(self) -> int:
        return sum(self.hits.values())

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            req_headers = {k.strip().lower(): v.strip() for k, _, v in
                           (ln.partition(":") for ln in lines[1:] if ln)}
            self.hits[path] = self.hits.get(path, 0) + 1
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            status, body, extra = self._answer(path, req_headers)
            out = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}",
                   "Content-Type: application/json", "Connection: close"]
            out += [f"{k}: {v}" for k, v in extra.items()]
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, path: str, req_headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        if self.fail_status is not None:
            return self.fail_status, b"{}", {}
        if path not in self.docs:
            return 404, b"{}", {}
        body = json.dumps(self.docs[path]).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        extra = dict(self.headers)
        extra["ETag"] = etag
        if req_headers.get("if-none-match") == etag:
            self.conditional += 1
            return 304, b"", extra
        return 200, body, extra
