"""The worker's connection cap: past `limits.max_connections` a new connection gets a 503 with
Retry-After and is closed, instead of joining an unbounded crowd (memory and every other
client's latency). Decided in the listener's protocol factory, once per connection; the
request path never sees it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from wardgate import logs
from wardgate.errors import ServiceUnavailable, render

#: at most one `connections_capped` event per this many seconds
LOG_EVERY_S = 10.0


class Refusal(asyncio.Protocol):
    """Writes the prepared 503 and closes; reads nothing."""

    __slots__ = ("answer",)

    def __init__(self, answer: bytes) -> None:
        self.answer = answer

    def connection_made(self, transport: Any) -> None:
        transport.write(self.answer)
        transport.close()

    def data_received(self, data: bytes) -> None:
        pass


class ConnectionCap:
    """The protocol factory of a listener: `make()` for a connection within the cap, a
    Refusal beyond it. `refused` counts refusals (for the metrics)."""

    __slots__ = ("open", "cap", "make", "ids", "server", "refused", "_logged_at")

    def __init__(self, open_connections: set[Any], cap: int, make: Callable[[], Any],
                 ids: Any, server: bytes) -> None:
        self.open = open_connections
        self.cap = cap
        self.make = make
        self.ids = ids
        self.server = server
        self.refused = 0
        self._logged_at = -LOG_EVERY_S

    def __call__(self) -> asyncio.BaseProtocol:
        if len(self.open) < self.cap:
            return self.make()  # type: ignore[no-any-return]
        self.refused += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            self._logged_at = now
            logs.event("connections_capped", max_connections=self.cap, refused=self.refused)
        err = ServiceUnavailable("this worker holds its maximum of connections",
                                 code="overloaded", retry_after_s=1)
        return Refusal(render(err, request_id=self.ids.fresh(), server=self.server,
                              keep_alive=False))
