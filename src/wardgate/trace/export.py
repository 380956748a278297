"""The OTLP/HTTP exporter: the trace package's one I/O adapter, a task on the worker's loop.

Every `flush_interval_ms` (or as soon as a full batch is waiting) it takes the waiting spans
in batches, encodes each (trace/otlp.py) and POSTs it as `application/x-protobuf` over one
kept-alive connection, each request bounded by `timeout_ms`. Requests never wait on it: a
batch that cannot be delivered (refused, timed out, a non-2xx answer) is dropped and counted,
the rest of that round's spans with it, and the next round tries again. A change between
delivering and failing is logged once (`trace_export_failing` / `trace_export_recovered`),
and so is the start of queue-full drops (`trace_spans_dropped`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httptools

from wardgate import __version__, logs
from wardgate.trace.otlp import Encoder
from wardgate.trace.step import Tracer

_ENCODE_SLICE = 64  # spans encoded between two turns of the event loop


class ExportFailed(Exception):
    """One export request did not succeed (the reason is the message)."""


class _Answer:
    """httptools callbacks for one response."""

    __slots__ = ("status", "done", "keep_alive")

    def __init__(self) -> None:
        self.status = 0
        self.done = False
        self.keep_alive = False

    def on_message_complete(self) -> None:
        self.done = True


class OtlpExporter:
    def __init__(self, tracer: Tracer, endpoint: str, *, service_name: str, batch_size: int,
                 flush_interval_ms: int, timeout_ms: int,
                 http_routes: dict[str, str] | None = None) -> None:
        self.tracer = tracer
        self.endpoint = endpoint
        u = urlsplit(endpoint)
        self._host = u.hostname or "127.0.0.1"
        self._tls = u.scheme == "https"
        self._port = u.port or (443 if self._tls else 80)
        path = (u.path or "/") + ("?" + u.query if u.query else "")
        authority = u.netloc.encode()
        self._head = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " + authority
                      + b"\r\nContent-Type: application/x-protobuf\r\nUser-Agent: wardgate/"
                      + __version__.encode() + b"\r\nContent-Length: ")
        self.encoder = Encoder(service_name, __version__, http_routes)
        self.batch_size = batch_size
        self.interval = flush_interval_ms / 1000
        self.timeout = timeout_ms / 1000
        self.exported = 0        # spans delivered (running totals, copied to the metrics)
        self.failed = 0          # spans dropped because their export failed
        self._failing = False
        self._dropped_seen = 0
        self._dropping = False
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.on_export: Callable[[OtlpExporter], None] | None = None  # metrics hook
        tracer.wake = self._wake.set

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the timer, then one last bounded round for what is still waiting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        self._close()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - a bug here must not stop the exporter
                logs.event("trace_export_error", level="error",
                           error=f"{type(exc).__name__}: {exc}")

    # -- one round ------------------------------------------------------------------------------
    async def flush(self) -> None:
        tracer = self.tracer
        while tracer.queue:
            batch = tracer.take(self.batch_size)
            body = await self._encode(batch)
            try:
                await asyncio.wait_for(self._post(body), self.timeout)
            except (OSError, TimeoutError, ExportFailed, httptools.HttpParserError) as exc:
                self._close()
                lost = len(batch) + len(tracer.queue)
                tracer.queue.clear()  # the endpoint is in trouble: do not queue behind it
                self.failed += lost
                if not self._failing:
                    self._failing = True
                    logs.event("trace_export_failing", level="warning", endpoint=self.endpoint,
                               error=_reason(exc), dropped=lost)
                break
            self.exported += len(batch)
            if self._failing:
                self._failing = False
                logs.event("trace_export_recovered", endpoint=self.endpoint,
                           dropped_while_failing=self.failed)
        self._report_drops()
        if self.on_export is not None:
            self.on_export(self)

    def _report_drops(self) -> None:
        """Queue-full drops, logged when they start and when they stop (not per span)."""
        dropped = self.tracer.dropped
        new = dropped - self._dropped_seen
        self._dropped_seen = dropped
        if new and not self._dropping:
            self._dropping = True
            logs.event("trace_spans_dropped", level="warning", reason="queue_full", total=dropped)
        elif not new and self._dropping:
            self._dropping = False
            logs.event("trace_spans_drops_stopped", total=dropped)

    async def _encode(self, batch: list[Any]) -> bytes:
        """The batch's body, encoded a slice at a time with the loop let go in between, so
        requests are served while a large batch is encoded (~10 µs per span, measured
        on a loaded 2-core machine: 512 spans in 5 ms)."""
        enc = self.encoder
        if len(batch) <= _ENCODE_SLICE:
            return enc.request(batch)
        pieces = []
        for i in range(0, len(batch), _ENCODE_SLICE):
            pieces.append(enc.spans(batch[i:i + _ENCODE_SLICE]))
            await asyncio.sleep(0)
        return enc.wrap(b"".join(pieces))

    async def _post(self, body: bytes) -> None:
        if self._conn is None:
            ctx = ssl.create_default_context() if self._tls else None
            self._conn = await asyncio.open_connection(self._host, self._port, ssl=ctx)
        reader, writer = self._conn
        writer.write(b"".join((self._head, b"%d\r\n\r\n" % len(body), body)))
        await writer.drain()
        answer = _Answer()
        parser = httptools.HttpResponseParser(answer)
        while not answer.done:
            data = await reader.read(65536)
            if not data:
                raise ExportFailed("the endpoint closed the connection")
            parser.feed_data(data)
        answer.status = parser.get_status_code()
        if not parser.should_keep_alive():
            self._close()
        if not 200 <= answer.status < 300:
            raise ExportFailed(f"HTTP {answer.status}")

    def _close(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def exporter_for(tracer: Tracer, cfg: Any, http_routes: dict[str, str]) -> OtlpExporter | None:
    """The exporter a `tracing:` section asks for (None when it sets no endpoint)."""
    if cfg.otlp_endpoint is None:
        return None
    return OtlpExporter(tracer, cfg.otlp_endpoint, service_name=cfg.service_name,
                        batch_size=cfg.batch_size, flush_interval_ms=cfg.flush_interval_ms,
                        timeout_ms=cfg.timeout_ms, http_routes=http_routes)
