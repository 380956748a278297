"""A client connection's parsed requests, after parsing: served one at a time in order,
answered (by their exchange, or with an error rendered by wardgate.errors.render), then the
connection kept alive, closed or turned into a WebSocket tunnel; flow control both ways and
the deadlines the worker's sweeper checks.

ClientProtocol's base class (protocol.py parses); split out so each file holds one side of
the connection. The attributes below are ClientProtocol's: declared here because this side
reads them (and, compiled, a native class must know its attributes).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from wardgate.errors import GatewayError, RequestTimeout, render
from wardgate.gateway.output import Output
from wardgate.gateway.request import Request

if TYPE_CHECKING:
    import asyncio

    from wardgate.gateway.proxy import Exchange
    from wardgate.gateway.runtime import Runtime
    from wardgate.gateway.worker import WorkerState

PAUSE_PIPELINE, PAUSE_UPSTREAM, PAUSE_BUFFER = 1, 2, 4  # why reading is paused (a bit set)


class RequestFlow(Output):
    # The state this side changes; the rest of ClientProtocol's attributes are its own slots.
    __slots__ = ("accepting", "active", "after_upgrade", "closed", "cur", "deadline", "paused",
                 "seen_any")
    state: WorkerState
    rt: Runtime
    loop: asyncio.AbstractEventLoop
    transport: Any
    client_ip: str
    closed: bool
    accepting: bool
    queue: deque[Request]
    active: Request | None
    cur: Request | None
    poisoned: GatewayError | None
    deadline: float
    keepalive_s: float
    log_enabled: bool
    paused: int
    tunnel: Any
    after_upgrade: list[bytes] | None
    seen_any: bool
    in_head: bool
    prev: bytes

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.flush_output()  # close() sends what the transport holds: ours first
            self.transport.close()

    # -- dispatch -----------------------------------------------------------------------------
    def _pump(self) -> None:
        if self.active is None and self.queue and not self.closed:
            p = self.queue.popleft()
            self.active = p
            self.rt.pipeline.dispatch(self, p)  # type: ignore[arg-type]  # a ClientProtocol
        if self.queue:
            self.pause_reading_for(PAUSE_PIPELINE)

    def _finish_request(self, p: Request, keep_alive: bool) -> None:
        self.active = None
        if self.poisoned is not None:
            if keep_alive and p.body_done and self.queue and self.accepting:
                self._pump()
                return
            self.cur = None
            self._reject(self.poisoned)
            return
        if not p.body_done or not keep_alive or not self.accepting or p.upgrade is not None:
            self.close()
            return
        if self.queue:
            self.deadline = 0.0
            self.resume_reading_for(PAUSE_PIPELINE)
            self._pump()
            return
        self.resume_reading_for(PAUSE_PIPELINE)
        self.deadline = self.loop.time() + self.keepalive_s
        self.seen_any = False

    def exchange_done(self, ex: Exchange, keep_alive: bool) -> None:
        p = ex.req
        if self.log_enabled:
            self.state.log(p, ex.status, p.body_bytes, ex.bytes_out, ex.target_url, None,
                           ex.retried)
        # `keep_alive` was decided with the response head; p.keep_alive is False if the client
        # half-closed since (eof_received): its EOF is consumed, so close now or never.
        if keep_alive and p.keep_alive and self.poisoned is None and not self.queue and p.body_done \
                and self.accepting and p.upgrade is None:
            # The common case of _finish_request: idle keep-alive, waiting for the next head.
            self.active = None
            if self.paused & PAUSE_PIPELINE:
                self.resume_reading_for(PAUSE_PIPELINE)
            self.deadline = self.loop.time() + self.keepalive_s
            self.seen_any = False
            return
        self._finish_request(p, keep_alive and p.keep_alive)

    def exchange_failed(self, ex: Exchange, err: GatewayError) -> None:
        self.request_failed(ex.req, err, ex.target_url, ex.retried)

    def request_failed(self, req: Request, err: GatewayError, target: str = "-",
                       retried: str | None = None) -> None:
        """Answer a request with an error (the single renderer is wardgate.errors.render)."""
        if self.closed:
            return
        keep = req.keep_alive and not err.close and req.body_done and self.accepting
        route = req.route
        extra = None
        if route is not None:
            if hasattr(err, "realm"):
                err.realm = route.realm
            if route.cors is not None:  # so a browser app can read the 401/403 it got
                extra = route.cors.response_headers(req)
        self.send(render(err, request_id=req.request_id, server=self.rt.server,
                         keep_alive=keep, head_only=req.method == "HEAD", extra=extra))
        self.state.log(req, err.status, req.body_bytes, 0, target, err.code, retried)
        self._finish_request(req, keep)

    def respond(self, p: Request, data: bytes, status: int, keep: bool) -> None:
        """Write a locally generated response (CORS preflight and the like)."""
        self.send(data)
        self.state.log(p, status, p.body_bytes, 0, "-", None)
        self._finish_request(p, keep)

    def abort_exchange(self, ex: Exchange, reason: str) -> None:
        """The response already started and cannot be completed: cut the connection."""
        self.state.log(ex.req, ex.status, ex.req.body_bytes, ex.bytes_out,
                       ex.target_url, "upstream_aborted")
        self.active = None
        if not self.closed:
            self.closed = True
            self.drop_output()
            self.transport.abort()

    def _reject(self, err: GatewayError) -> None:
        """A protocol error before or while parsing: answer (if nothing started) and close."""
        if self.active is not None and self.active.exchange is not None:
            self.active.exchange.abort()
        req = self.cur or Request()
        # May still be the client's unvalidated X-Request-Id if the head failed its checks;
        # next() keeps a valid one (ours always are) and replaces anything else.
        req.request_id = self.state.ids.next(req.request_id or None)
        req.client_ip = self.client_ip
        if self.active is None or self.active.exchange is None:
            self.send(render(err, request_id=req.request_id, server=self.rt.server,
                             keep_alive=False))
        self.state.log(req, err.status, 0, 0, "-", err.code)
        self.close()

    # -- tunnel (after a 101 from the upstream) ------------------------------------------------
    def become_tunnel(self, ex: Exchange, upstream: Any, rest: bytes) -> None:
        self.state.log(ex.req, 101, 0, 0, ex.target_url, None)
        self.active = None
        self.deadline = 0.0
        self.tunnel = upstream
        if rest:
            self.send(rest)
        early, self.after_upgrade = self.after_upgrade or [], None
        for chunk in early:
            upstream.send(chunk)

    def tunnel_write(self, data: bytes) -> None:
        self.send(data)

    def tunnel_closed(self) -> None:
        self.tunnel = None
        self.close()

    # -- flow control --------------------------------------------------------------------------
    def pause_reading_for(self, reason: int) -> None:
        if not self.paused and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_reading_for(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and not self.closed:
                self.transport.resume_reading()

    def _source(self) -> Any:
        """What feeds this client's output: the tunnel's upstream, or the active exchange's."""
        up = self.tunnel
        if up is None and self.active is not None and self.active.exchange is not None:
            up = self.active.exchange.conn
        return up

    def pause_writing(self) -> None:
        up = self._source()
        if up is not None:
            up.pause_reading()

    def resume_writing(self) -> None:
        up = self._source()
        if up is not None:
            up.resume_reading()

    # -- timeouts (called by the worker's sweeper) ---------------------------------------------
    def check_timeouts(self, now: float) -> None:
        p = self.active
        if p is not None and p.exchange is not None:
            ex = p.exchange
            if ex.total_deadline and now > ex.total_deadline and not ex.finished:
                ex.on_total_timeout()
                return
            if ex.deadline and now > ex.deadline and ex.conn is not None:
                ex.on_timeout()
                return
        dl = self.deadline
        if not dl or now <= dl or self.closed or self.tunnel is not None:
            return
        if self.in_head and p is None and not self.seen_any:
            self.close()  # idle keep-alive connection: close quietly
            return
        if p is not None and p.exchange is not None and p.exchange.response_started:
            self.abort_exchange(p.exchange, "client body timeout")
            return
        self._reject(RequestTimeout("request not received in time", close=True))

    def drain(self) -> None:
        """Stop keeping the connection alive; close it now if it is idle between requests.

        A connection that has not sent a byte yet (`prev` is the last read) was accepted just
        before the drain began and its first request is on the way: that one is answered,
        with `Connection: close`. The header timeout bounds the wait (check_timeouts)."""
        self.accepting = False
        if self.active is None and not self.queue and self.tunnel is None and not self.seen_any \
                and self.prev:
            self.close()
