"""A steady, bounded load of idempotent GETs for the fault suite.

`Load(port, path, clients=N)` runs N concurrent HTTP/1.1 keep-alive clients on an asyncio loop
in a thread of its own, so a test can kill, stop or signal processes while the load runs. Each
client sends one request at a time (a short pause between two), reads the whole answer and
records an `Outcome`: when it was sent, how long it took, the status (0 when there was none),
the few response headers the fault tests look at, and `kind`:

- `ok`: a complete response (any status);
- `refused`: the TCP connect failed (nothing was accepted, so nothing was lost);
- `closed_idle`: a *reused* keep-alive connection was closed before any byte of the answer
  came back. RFC 9112 §9.3.1 lets a client retry an idempotent request then, and real clients
  do; the driver records it and opens a new connection for the next request;
- `failed`: the request was sent on a fresh connection, or part of an answer had arrived, and
  the connection broke: a request the server accepted and did not answer;
- `timeout`: no complete answer within `timeout_s`.

The parser is deliberately small (status line, headers, Content-Length or chunked body) and
independent of the gateway's own (httptools) parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

KEEP = ("retry-after", "x-upstream", "connection", "content-type")


@dataclass(frozen=True)
class Outcome:
    client: int
    sent: float  # time.monotonic() when the request was written
    latency: float
    status: int
    kind: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class _Broken(Exception):
    def __init__(self, got_bytes: bool) -> None:
        self.got_bytes = got_bytes


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    got = False
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        raise _Broken(bool(e.partial))
    except (ConnectionError, asyncio.LimitOverrunError):
        raise _Broken(False)
    got = True
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    try:
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers
                    break
                body += await reader.readexactly(size)
                await reader.readexactly(2)
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = await reader.read()
    except (asyncio.IncompleteReadError, ConnectionError):
        raise _Broken(got)
    return status, headers, body


class Load:
    def __init__(self, port: int, path: str = "/", clients: int = 8, pause_s: float = 0.01,
                 headers: dict[str, str] | None = None, timeout_s: float = 10.0,
                 keep_body: bool = False) -> None:
        self.port = port
        self.path = path
        self.clients = clients
        self.pause_s = pause_s
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.timeout_s = timeout_s
        self.keep_body = keep_body
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.started_at = 0.0

    # -- control ---------------------------------------------------------------------------
    def start(self) -> Load:
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 5)
            assert not self._thread.is_alive(), "load driver did not stop"
        return self.snapshot()

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def wait_for(self, n: int, timeout: float = 10.0) -> None:
        """Block until at least n outcomes were recorded (the load is really flowing)."""
        deadline = time.monotonic() + timeout
        while len(self.outcomes) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"load: {len(self.outcomes)} outcomes after {timeout}s: "
                                   f"{summary(self.snapshot())}")
            time.sleep(0.02)

    # -- the clients ------------------------------------------------------------------------
    async def _main(self) -> None:
        await asyncio.gather(*(self._client(i) for i in range(self.clients)))

    async def _client(self, cid: int) -> None:
        req = (f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
               f"{self.extra}\r\n").encode()
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        uses = 0
        while not self._stop.is_set():
            t0 = time.monotonic()
            if writer is None:
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", self.port), self.timeout_s)
                except (OSError, TimeoutError):
                    self._record(Outcome(cid, t0, time.monotonic() - t0, 0, "refused"))
                    await asyncio.sleep(max(self.pause_s, 0.02))
                    continue
                uses = 0
            assert reader is not None
            uses += 1
            t0 = time.monotonic()
            try:
                writer.write(req)
                status, headers, body = await asyncio.wait_for(_read_response(reader),
                                                               self.timeout_s)
            except _Broken as e:
                kind = "closed_idle" if uses > 1 and not e.got_bytes else "failed"
                self._record(Outcome(cid, t0, time.monotonic() - t0, 0, kind))
                writer = await self._drop(writer)
                continue
            except (ConnectionError, OSError):
                kind = "closed_idle" if uses > 1 else "failed"
                self._record(Outcome(cid, t0, time.monotonic() - t0, 0, kind))
                writer = await self._drop(writer)
                continue
            except TimeoutError:
                self._record(Outcome(cid, t0, time.monotonic() - t0, 0, "timeout"))
                writer = await self._drop(writer)
                continue
            kept = {k: headers[k] for k in KEEP if k in headers}
            self._record(Outcome(cid, t0, time.monotonic() - t0, status, "ok", kept,
                                 body if self.keep_body or status >= 500 else b""))
            if headers.get("connection", "").lower() == "close":
                writer = await self._drop(writer)
            if self.pause_s:
                await asyncio.sleep(self.pause_s)
        if writer is not None:
            await self._drop(writer)

    @staticmethod
    async def _drop(writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1)
        return None

    def _record(self, o: Outcome) -> None:
        with self._lock:
            self.outcomes.append(o)


def summary(outcomes: list[Outcome]) -> str:
    """A short histogram for assertion messages: Counter of (kind, status)."""
    return str(Counter((o.kind, o.status) for o in outcomes).most_common())


def between(outcomes: list[Outcome], t0: float, t1: float = float("inf")) -> list[Outcome]:
    return [o for o in outcomes if t0 <= o.sent < t1]
