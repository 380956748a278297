"""One connection to one Redis node, pipelined: every command issued during one turn of the
event loop leaves in a single write, and replies are matched to callers in order (RESP
answers in order). Callers never await: each command carries a callback that receives the
reply, a `ReplyError`, or a `StoreError` (connection lost, or no reply within the deadline).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from wardgate.state.resp import Parser, ProtocolError, ReplyError

Callback = Callable[[Any], None]


class StoreError(Exception):
    """Redis unreachable, too slow or misbehaving: callers apply their store-error policy."""


TIMED_OUT = StoreError("no reply from the state store within timeout_ms")
LOST = StoreError("connection to the state store lost")
DOWN = StoreError("state store unavailable")


class RedisConnection(asyncio.Protocol):
    """Entries of `pending` are [deadline, callback, script, key]: a timed-out entry keeps its
    place (its reply will still come, in order) with the callback cleared. An EVALSHA entry
    names its script and key, so a NOSCRIPT reply (a restarted or flushed server) is answered by
    sending the script itself (EVAL) with the same deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[RedisConnection], None],
                 stuck_s: float) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = Parser()
        self.pending: deque[list[Any]] = deque()
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.on_lost = on_lost
        self.stuck_s = stuck_s  # a reply this late: the connection is presumed dead
        self.ready = False      # handshake replies all in
        self.closed = False

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            replies = self.parser.feed(data)
        except ProtocolError:
            self.abort()
            return
        pending = self.pending
        for reply in replies:
            if not pending:
                self.abort()  # a reply nobody asked for: out of step, unusable
                return
            deadline, cb, script, key = pending.popleft()
            if cb is None:
                continue
            if script is not None and type(reply) is ReplyError \
                    and reply.message.startswith("NOSCRIPT"):
                self.call(script.eval_command(key), cb, deadline)
                continue
            try:
                cb(reply)
            except Exception:  # noqa: BLE001,S112 - one caller's bug must not desync the rest
                continue

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ready = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        pending, self.pending = self.pending, deque()
        for _, cb, _, _ in pending:
            if cb is not None:
                try:
                    cb(LOST)
                except Exception:  # noqa: BLE001,S112
                    continue
        self.on_lost(self)

    # -- sending --------------------------------------------------------------------------------
    def call(self, cmd: bytes, cb: Callback | None, deadline: float,
             script: Any = None, key: bytes = b"") -> None:
        self.pending.append([deadline, cb, script, key])
        self.out.append(cmd)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)
        if self.timer is None:
            self.timer_at = deadline
            self.timer = self.loop.call_at(deadline, self._expire)
        elif deadline < self.timer_at:  # a shorter deadline than the one armed (start-up calls)
            self.timer.cancel()
            self.timer_at = deadline
            self.timer = self.loop.call_at(deadline, self._expire)

    def _flush(self) -> None:
        self.flush_scheduled = False
        out = self.out
        if out and self.transport is not None and not self.closed:
            self.out = []
            self.transport.writelines(out)

    def _expire(self) -> None:
        self.timer = None
        now = self.loop.time()
        pending = self.pending
        for entry in pending:
            cb = entry[1]
            if cb is not None and entry[0] <= now:
                entry[1] = None
                entry[2] = None  # its NOSCRIPT, if any, is not retried either
                try:
                    cb(TIMED_OUT)
                except Exception:  # noqa: BLE001,S112
                    continue
        if pending and now - pending[0][0] > self.stuck_s:
            self.abort()  # replies this late: the server hangs or the path is gone
            return
        live = [entry[0] for entry in pending if entry[1] is not None]
        if live:
            self.timer_at = min(live)
        elif pending:  # only dead entries left: look again once they are presumed lost
            self.timer_at = pending[0][0] + self.stuck_s + 0.001
        else:
            return
        self.timer = self.loop.call_at(self.timer_at, self._expire)

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    @property
    def depth(self) -> int:
        return len(self.pending)
