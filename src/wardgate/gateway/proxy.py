"""One proxied request: request head and body up, response head and body down.

Driven entirely by callbacks from the client protocol and the upstream connection, so a
response costs no task and no future once the upstream connection is in hand. Output produced
during one upstream read is collected and written with a single writelines (facts §7).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wardgate.errors import BadGateway, GatewayError, GatewayTimeout, ServiceUnavailable
from wardgate.gateway.headers import client_response_lines
from wardgate.gateway.status import STATUS_LINES
from wardgate.gateway.upstream.connection import FRAME_CHUNKED, FRAME_CLOSE, FRAME_LENGTH

if TYPE_CHECKING:
    from wardgate.gateway.protocol import ClientProtocol
    from wardgate.gateway.request import Request
    from wardgate.gateway.upstream.cluster import Cluster, Target
    from wardgate.gateway.upstream.connection import UpstreamConnection
    from wardgate.gateway.upstream.health import PassiveHealth

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_CRLF = b"\r\n"
_HEAD_END = b"\r\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_REQUEST_ID_LINE = b"\r\nX-Request-Id: "
_KEEP_ALIVE_END = b"\r\nConnection: keep-alive\r\n\r\n"
_CLOSE_END = b"\r\nConnection: close\r\n\r\n"
# "HTTP/1.1 200 OK" without its CRLF: every field line brings its own leading CRLF.
STATUS_STARTS = {code: line[:-2] for code, line in STATUS_LINES.items()}


class Exchange:
    # Slotted, every field set in __init__: see request.py for why (attribute access on a
    # class without slots can fall back to a dict when many instances exist at once).
    __slots__ = (
        "client", "req", "cluster", "start_line", "host_line", "fields", "chunked_up",
        "head_request", "wants_upgrade", "out", "read_timeout", "loop", "target", "conn",
        "request_complete", "sent_body", "tried", "response_started", "chunked_down",
        "close_after", "status", "bytes_out", "deadline", "finished", "flushed", "breaker",
        "total_deadline", "retried", "hold_head",
    )

    def __init__(self, client: ClientProtocol, req: Request, cluster: Cluster,
                 start_line: bytes, host_line: bytes | None, fields: bytes,
                 chunked_up: bool) -> None:
        """The upstream request head is `start_line`, the Host line (`host_line`, or the
        target's when None), `fields` (field lines joined by CRLF, the last "X-Request-Id: "),
        the request id, the trace line (`req.trace_line`: empty unless tracing is on) and the blank
        line: joined once, when a connection is in hand."""
        self.client = client
        self.req = req
        self.cluster = cluster
        self.start_line = start_line
        self.host_line = host_line
        self.fields = fields
        self.chunked_up = chunked_up
        self.head_request = req.method == "HEAD"
        self.wants_upgrade = req.upgrade is not None
        self.out: list[bytes] = []
        route = req.route
        self.read_timeout = route.try_timeout
        self.loop = client.loop
        self.target: Target | None = None
        self.conn: UpstreamConnection | None = None
        self.request_complete = False
        self.sent_body = False
        self.tried: Target | None = None
        self.response_started = False
        self.chunked_down = False
        self.close_after = False
        self.status = 0
        self.bytes_out = 0
        self.deadline = 0.0
        self.finished = False
        self.flushed = False      # some of the response has been written to the client
        self.breaker = cluster.breaker
        # The route's total timeout (0: none), from the request's start; the sweeper checks it.
        self.total_deadline = req.start + route.total_timeout if route.total_timeout else 0.0
        self.retried: str | None = None  # the error code of the failed first try, if retried
        # A Content-Length response's head waits for its first body bytes (see flush).
        self.hold_head = False

    # -- choosing a target and a connection ---------------------------------------------------
    def start(self, exclude: Target | None = None) -> None:
        now = self.loop.time()
        br = self.breaker
        if exclude is None:
            # Counted from here to the end of the exchange (on_response_end or _done).
            br.active += 1
            if br.active > br.max_requests:
                br.rejected_requests += 1
                self.fail(ServiceUnavailable("upstream has too many requests in flight",
                                             code="upstream_overloaded",
                                             retry_after_s=self.cluster.retry_after_s))
                return
        cluster = self.cluster
        target = cluster.pick(now, exclude, self.req)
        if target is None:
            if exclude is not None:
                target = exclude  # the only target left: retry it rather than fail
            else:
                self.fail(ServiceUnavailable("no healthy upstream target", code="no_healthy_target",
                                             retry_after_s=cluster.retry_after(now)))
                return
        conn = None if self.wants_upgrade else target.take_idle()
        if conn is None and br.pending >= br.max_pending:
            br.rejected_pending += 1
            self.fail(ServiceUnavailable("too many requests waiting for an upstream connection",
                                         code="upstream_pending_overflow",
                                         retry_after_s=cluster.retry_after_s))
            return
        self.target = target
        target.active += 1
        if conn is not None:
            self._attach(conn, now)
        else:
            br.pending += 1
            self.loop.create_task(self._connect(target))

    async def _connect(self, target: Target) -> None:
        err: GatewayError
        try:
            conn = await target.connect()
        except TimeoutError:
            err = GatewayTimeout("upstream connect timed out", code="connect_timeout")
        except ConnectionResetError:
            # Closed as it was opened (Target.connect): nothing of the request went out.
            err = BadGateway("upstream closed the connection as it was opened",
                             code="connect_reset")
        except OSError:
            err = BadGateway("upstream connection refused", code="connect_refused")
        else:
            self.breaker.pending -= 1
            if self.finished:
                target.release(conn)
                return
            self._attach(conn, self.loop.time())
            return
        self.breaker.pending -= 1
        if self.finished:  # answered meanwhile (total timeout, client gone): count it only
            if target.health.failure(self.loop.time()):
                self.cluster.refresh(self.loop.time())
            return
        self._target_failed(err, retry=True)

    def _attach(self, conn: UpstreamConnection, now: float) -> None:
        self.conn = conn
        conn.begin(self)
        p = self.req
        host = self.host_line or conn.target.host_line
        buffered = p.body
        if buffered:
            parts = [self.start_line, host, self.fields, p.request_id, p.trace_line, _HEAD_END]
            p.body = None
            p.buffered = 0
            if self.chunked_up:
                for chunk in buffered:
                    parts += (b"%x\r\n" % len(chunk), chunk, _CRLF)
            else:
                parts += buffered
            self.sent_body = True
            conn.send_many(parts)
            self.client.body_flushed()
        else:
            conn.send(b"".join((self.start_line, host, self.fields, p.request_id, p.trace_line,
                                _HEAD_END)))
        if p.body_done:
            if self.chunked_up:
                conn.send(_LAST_CHUNK)
            self.request_complete = True
        p.exchange = self
        self.deadline = now + self.read_timeout

    # -- request body (called by the client protocol) ----------------------------------------
    def request_body(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:  # still connecting: buffer, bounded by pausing the client
            self.client.buffer_body(self.req, data)
            return
        self.sent_body = True
        if self.chunked_up:
            conn.send_many((b"%x\r\n" % len(data), data, _CRLF))
        else:
            conn.send(data)

    def request_done(self) -> None:
        if self.conn is not None:
            self._request_end()

    def _request_end(self) -> None:
        if self.chunked_up:
            self.conn.send(_LAST_CHUNK)  # type: ignore[union-attr]
        self.request_complete = True

    # -- response (called by the upstream connection) ----------------------------------------
    def on_response_head(self, status: int, block: bytes, framing: int, length: bytes | None,
                         length_in_block: bool) -> None:
        """`block` holds the rewritten upstream fields (b"\\r\\nName: value" each, framing
        left out unless `length_in_block`); `length` is the upstream's Content-Length
        (validated by llhttp), if it sent one."""
        self.status = status
        self.response_started = True
        health = self.target.health  # type: ignore[union-attr]
        if status >= 500 and status in health.fail_statuses:
            self._status_failure(health)
        elif health.failures or health.state:
            if health.success(self.loop.time()):
                self.cluster.refresh(self.loop.time())
        if health.rate is not None and status < 500:
            health.record_success(self.loop.time())
        req = self.req
        framing_line = b""
        self.hold_head = framing == FRAME_LENGTH and not self.head_request
        if framing == FRAME_LENGTH or self.head_request:
            if length is not None and not length_in_block:
                # A HEAD answer keeps the length of the GET it stands for.
                framing_line = b"\r\nContent-Length: " + length
        elif framing == FRAME_CHUNKED or framing == FRAME_CLOSE:
            if req.version == "1.1":
                framing_line = b"\r\nTransfer-Encoding: chunked"
                self.chunked_down = True
            else:
                self.close_after = True
        keep = req.keep_alive and not self.close_after and self.client.accepting
        self.close_after = not keep
        cors = req.route.cors
        cors_lines = b"" if cors is None else b"".join(
            [_CRLF + line for line in cors.response_lines(req)])
        self.out.append(b"".join((STATUS_STARTS[status], block, framing_line, _REQUEST_ID_LINE,
                                  req.request_id, cors_lines, req.resp_fields,
                                  _KEEP_ALIVE_END if keep else _CLOSE_END)))

    def on_response_body(self, data: bytes) -> None:
        self.bytes_out += len(data)
        if self.chunked_down:
            if data:
                self.out += (b"%x\r\n" % len(data), data, _CRLF)
        else:
            self.out.append(data)

    def flush(self) -> None:
        """Write what this upstream read produced. A Content-Length response's head that came
        alone (upstreams often write head and body separately) is kept until its first body
        bytes: sent together, and if the target dies in between, nothing has reached the
        client, so an idempotent request can still be retried on another target."""
        out = self.out
        if out and not (self.hold_head and not self.bytes_out):
            self.out = []
            self.flushed = True
            self.client.send_many(out)
        self.deadline = self.loop.time() + self.read_timeout

    def on_response_end(self) -> None:
        out = self.out
        if self.chunked_down:
            out.append(_LAST_CHUNK)
        if out:
            self.out = []
            self.flushed = True
            self.client.send_many(out)
        self.finished = True
        target = self.target
        if target is not None:
            target.active -= 1
        br = self.breaker
        br.active -= 1
        if self.tried is not None:
            br.retrying -= 1
        self.req.exchange = None
        self.client.exchange_done(self, not self.close_after)

    def _status_failure(self, health: PassiveHealth) -> None:
        """A 5xx the upstream chose to send counts toward ejecting it (it still goes out)."""
        now = self.loop.time()
        if health.failure(now):
            self.cluster.refresh(now)

    def on_upgrade(self, conn: UpstreamConnection, status: int, headers: list[tuple[bytes, bytes]],
                   rest: bytes) -> None:
        self.status = status
        self.response_started = True
        if self.target.health.success(self.loop.time()):  # type: ignore[union-attr]
            self.cluster.refresh(self.loop.time())
        lines = client_response_lines(headers, keep_upgrade=True)
        lines.append(b"Connection: Upgrade")
        lines.append(b"X-Request-Id: " + self.req.request_id)
        self.client.send(STATUS_LINES[101] + _CRLF.join(lines) + b"\r\n\r\n")
        self._done()
        self.client.become_tunnel(self, conn, rest)

    # -- failures ------------------------------------------------------------------------------
    def _unstart(self) -> bool:
        """Forget a response head that never reached the client, so an error can be sent."""
        if self.response_started and not self.flushed:
            self.out.clear()
            self.response_started = False
            self.chunked_down = False
            self.close_after = False
        return self.response_started

    def on_upstream_lost(self, conn: UpstreamConnection, got_response: bool) -> None:
        if self._unstart():
            self.out.clear()
            self._done()
            self.client.abort_exchange(self, "upstream closed mid-response")
            return
        # A reused pooled connection that the upstream had just closed is the classic race:
        # safe to retry when nothing of the request body went out and the request is
        # idempotent, or the upstream had not begun to answer (then it closed the idle
        # connection as the request arrived, without acting on it).
        reused = conn.uses > 1
        safe = not self.sent_body and (self.req.method in IDEMPOTENT
                                       or (reused and not got_response))
        self._target_failed(BadGateway("upstream connection reset", code="upstream_reset"),
                            retry=safe, count_failure=not reused)

    def on_upstream_error(self, conn: UpstreamConnection, err: GatewayError) -> None:
        self.conn = None
        if self._unstart():
            self.out.clear()
            self._done()
            self.client.abort_exchange(self, err.detail)
            return
        self._target_failed(err, retry=False)

    def on_timeout(self) -> None:
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.exchange = None
            conn.abort()
        if self._unstart():
            self._done()
            self.client.abort_exchange(self, "upstream read timed out")
            return
        # A per-try timeout (the route's per_try_s) may be retried on another target when
        # nothing of the request could have been acted on twice.
        retry = self.req.route.retry_timeouts and not self.sent_body \
            and self.req.method in IDEMPOTENT
        self._target_failed(GatewayTimeout("upstream did not answer in time", code="read_timeout"),
                            retry=retry)

    def on_total_timeout(self) -> None:
        """The route's total timeout passed: 504, or cut the connection if the answer started."""
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.exchange = None
            conn.abort()
        if self._unstart():
            self._done()
            self.client.abort_exchange(self, "route timeout")
            return
        target = self.target
        if target is not None and target.health.failure(self.loop.time()):
            self.cluster.refresh(self.loop.time())
        self.fail(GatewayTimeout("upstream did not answer within the route's timeout",
                                 code="route_timeout"))

    def _target_failed(self, err: GatewayError, *, retry: bool, count_failure: bool = True) -> None:
        target = self.target
        self.conn = None
        if target is not None:
            target.active -= 1
            self.target = None
            if count_failure:
                now = self.loop.time()
                if target.health.failure(now):
                    self.cluster.refresh(now)
        if retry and self.tried is None and not self.finished and not self.client.closed:
            if self.breaker.retry_allowed():
                self.tried = target
                self.retried = err.code
                self.start(exclude=target)
                return
            err = type(err)(err.detail + "; no retry: the upstream's retry budget is spent",
                            code="retry_budget_exhausted")
        self.fail(err)

    def fail(self, err: GatewayError) -> None:
        if self.finished:
            return
        self._done()
        self.client.exchange_failed(self, err)

    def _done(self) -> None:
        if not self.finished:
            self.finished = True
            if self.target is not None:
                self.target.active -= 1
            br = self.breaker
            br.active -= 1
            if self.tried is not None:
                br.retrying -= 1
            self.req.exchange = None

    def abort(self) -> None:
        """The client went away: drop the upstream connection, it may be mid-message."""
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.exchange = None
            conn.abort()
        self._done()

    @property
    def target_url(self) -> str:
        t = self.target or self.tried
        return t.url if t is not None else "-"
