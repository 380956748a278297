"""The trace step of the pipeline: compiled once per worker, run once per request.

`begin(req)` (first thing the pipeline does with a request): continue a valid inbound
traceparent when its sender is trusted, else start a new trace; give the gateway's span its id;
set `req.trace` (for the access log and the span) and `req.trace_line` (the upstream's
`traceparent`, and `tracestate` when continued, appended to the upstream head by proxy.py).
Inbound copies are never forwarded: the runtime adds both names to every route's strip set.

`finish(req, status, seconds)` (WorkerState.log, where a request ends): one tuple appended to
a bounded list when the span is sampled and exported; when the list is full the span is
dropped and counted. The exporter (trace/export.py) empties it off the request path.

Sans-I/O apart from the wall clock read once per exported span (`clock`, injectable).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wardgate.trace.context import IdSource, parse_traceparent, traceparent_line, valid_tracestate

if TYPE_CHECKING:
    from wardgate.config.tracing import TracingConfig
    from wardgate.gateway.request import Request

TRACEPARENT = b"traceparent"
TRACESTATE = b"tracestate"
#: header names the gateway rebuilds when tracing is on (stripped from the client's request)
TRACE_HEADERS = frozenset((TRACEPARENT, TRACESTATE))


class Tracer:
    __slots__ = ("ids", "_trust_any", "_trust_proxies", "_trusted", "_ratio", "_random", "_always",
                 "queue", "_cap", "dropped", "_batch", "wake", "_clock", "exporting")

    def __init__(self, cfg: TracingConfig, trusted: Any,
                 clock: Callable[[], int] = time.time_ns,
                 rand: Callable[[], float] = random.random, ids: IdSource | None = None) -> None:
        self.ids = ids or IdSource()
        self._trust_any = cfg.trust_inbound == "any"
        self._trust_proxies = cfg.trust_inbound == "trusted_proxies"
        self._trusted = trusted  # gateway.headers.TrustedProxies (supports `ip in trusted`)
        self._ratio = cfg.ratio
        self._always = cfg.ratio >= 1.0
        self._random = rand
        self.exporting = cfg.exporting
        #: finished sampled spans waiting for the exporter (positions: otlp.RECORD_FIELDS)
        self.queue: list[tuple[Any, ...]] = []
        self._cap = cfg.queue_size
        self.dropped = 0  # spans dropped because the queue was full (a running total)
        self._batch = cfg.batch_size
        self.wake: Callable[[], None] | None = None  # the exporter's: a full batch is waiting
        self._clock = clock

    def begin(self, req: Request) -> None:
        parent = None
        states: list[bytes] | None = None
        if self._trust_any or (self._trust_proxies and req.client_ip in self._trusted):
            seen = 0
            value = b""
            for name, v in req.headers:
                if name == TRACEPARENT:
                    seen += 1
                    value = v
                elif name == TRACESTATE:
                    if states is None:
                        states = [v]
                    else:
                        states.append(v)
            if seen == 1:  # two traceparent fields are not one trace: start a new one
                parent = parse_traceparent(value)
        if parent is not None:
            span_id = self.ids.span_id()
            trace_id = parent.trace_id
            sampled = parent.sampled  # parent-based: the caller's decision stands
            state = valid_tracestate(states) if states is not None else None
            req.trace = (trace_id, span_id, parent.parent_id, state, sampled)
            line = traceparent_line(trace_id, span_id, sampled)
            req.trace_line = line if state is None else line + b"\r\ntracestate: " + state
        else:
            trace_id, span_id = self.ids.new_trace()
            sampled = self._always or (self._ratio > 0.0 and self._random() < self._ratio)
            req.trace = (trace_id, span_id, None, None, sampled)
            req.trace_line = traceparent_line(trace_id, span_id, sampled)

    def finish(self, req: Request, status: int, seconds: float) -> None:
        t = req.trace
        if t is None or not t[4] or not self.exporting:
            return
        q = self.queue
        if len(q) >= self._cap:
            self.dropped += 1
            return
        route = req.route
        q.append((t[0], t[1], t[2], t[3], True, self._clock(), int(seconds * 1e9),
                  req.method or "_OTHER", route.name if route is not None else None, status,
                  req.path, req.host, req.client_ip, req.auth_outcome, req.scheme))
        if len(q) == self._batch and self.wake is not None:
            self.wake()  # once per full batch, not per request

    def take(self, n: int) -> list[tuple[Any, ...]]:
        """Up to `n` of the oldest waiting spans (for the exporter)."""
        q = self.queue
        batch = q[:n]
        del q[:n]
        return batch
