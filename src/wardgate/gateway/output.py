"""Output written once per event-loop iteration, not at every `send`.

uvloop's `transport.write` makes its syscall immediately. A worker handling many ready
connections in one iteration would then wake its peers (wrk, the upstream) once per request,
each wake-up of an idle core an inter-processor interrupt that the writer pays for; between
two such writes the Python work of the next request runs. Collecting the iteration's output
and writing it when the iteration's reads are done sends the same bytes with the same number
of syscalls, but back to back, while the peers are awake. Measured with `bench/run.py`
(docs/benchmarks.md), medians: jwt-distinct 9,443 -> 13,375 req/s, plain 38,242 -> 39,211.

Ordering: every byte a connection sends goes through `Output.send`/`send_many`, so its bytes
stay in order; `flush_output` runs before the connection closes and before a bulk write goes
straight to the transport, and `drop_output` when it aborts.
"""

from __future__ import annotations

import asyncio
from typing import Any

# Larger writes go to the transport at once (after anything pending): bulk data (a streamed
# body, a busy tunnel) gains nothing from batching, and the transport's high-water mark must
# see it promptly to pause the other side (libuv may read a socket up to 32 times in one
# iteration).
BULK_BYTES = 64 * 1024


class WriteBatch:
    """The connections with output pending in this iteration; flushed by one call_soon."""

    __slots__ = ("loop", "_dirty")

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None  # set by the worker (bind)
        self._dirty: list[Output] = []

    def bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop

    def add(self, conn: Output) -> None:
        if not self._dirty:
            # Ready callbacks run after this iteration's I/O callbacks: every read that was
            # ready has been handled (and has produced its output) by then.
            self.loop.call_soon(self.flush)  # type: ignore[union-attr]
        self._dirty.append(conn)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush_output()


BATCH = WriteBatch()


class Output:
    """Base of a protocol with a `transport` and a `wbuf` attribute (None when nothing is
    pending; one bytes object, or a list of them): deferred, ordered writes."""

    __slots__ = ()
    transport: Any
    wbuf: bytes | list[bytes] | None

    def send(self, data: bytes) -> None:
        buf = self.wbuf
        if buf is None:
            if BATCH.loop is None or len(data) > BULK_BYTES:
                self.transport.write(data)  # nothing pending: order is kept
                return
            self.wbuf = data  # type: ignore[misc]  # the class using the mixin has the slot
            dirty = BATCH._dirty
            if not dirty:
                BATCH.loop.call_soon(BATCH.flush)
            dirty.append(self)
        elif len(data) > BULK_BYTES:
            self.flush_output()
            self.transport.write(data)
        elif type(buf) is bytes:
            self.wbuf = [buf, data]  # type: ignore[misc]
        else:
            buf.append(data)  # type: ignore[union-attr]

    def send_many(self, parts: list[bytes] | tuple[bytes, ...]) -> None:
        if len(parts) == 1:
            self.send(parts[0])
        elif sum(map(len, parts)) > BULK_BYTES:
            self.flush_output()
            self.transport.writelines(parts)
        else:
            self.send(b"".join(parts))  # a response head and a small body: one buffer

    def flush_output(self) -> None:
        buf = self.wbuf
        if buf is None:
            return
        self.wbuf = None  # type: ignore[misc]
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if isinstance(buf, bytes):
            transport.write(buf)
        elif len(buf) == 2 and len(buf[1]) <= 4096:
            transport.write(buf[0] + buf[1])  # a small answer: one buffer, no iovec array
        else:
            transport.writelines(buf)

    def drop_output(self) -> None:
        self.wbuf = None  # type: ignore[misc]
