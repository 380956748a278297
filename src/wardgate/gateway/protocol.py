"""The client side of the data plane: one asyncio protocol per client connection.

This file is its reading side: httptools (llhttp) with the guards the data-plane facts call
for: head bytes capped before the parser, count/URL/body caps in callbacks, requests
dispatched only after `feed_data` returned cleanly. What happens to a parsed request next
(order, answers, keep-alive, tunnel, flow control, deadlines) is client_flow.RequestFlow."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from wardgate.errors import (
    BadRequest,
    GatewayError,
    HeadersTooLarge,
    PayloadTooLarge,
    UriTooLong,
)
from wardgate.gateway.client_flow import PAUSE_BUFFER, RequestFlow
from wardgate.gateway.head import (
    HeadFacts,
    classify_parser_error,
    foreign_protocol,
    read_fields,
    read_request_line,
    refresh_fields,
)
from wardgate.gateway.request import Request

if TYPE_CHECKING:
    from wardgate.gateway.worker import WorkerState

_MAX_BUFFERED_BODY = 256 * 1024


# One base class (RequestFlow, itself an Output), not asyncio.Protocol: the loop only calls
# the protocol methods, all defined here or in RequestFlow, and a class compiled by mypyc
# (setup.py) has at most one base.
class ClientProtocol(RequestFlow):
    # Slotted (see request.py): with ~50 attributes a dict-based instance exceeds CPython's
    # shared-key limit (30) and every attribute access would go through a dict lookup.
    # (RequestFlow holds the slots its side assigns.)
    __slots__ = (
        "state", "rt", "loop", "scheme", "max_head", "max_headers", "max_url", "max_pipelined",
        "header_s", "body_s", "keepalive_s", "log_enabled", "ids", "max_body_any", "transport",
        "wbuf", "parser", "client_ip", "queue", "cur_pending", "url", "in_head", "head_bytes",
        "head_open", "error", "poisoned", "tunnel", "head_began", "fields", "trailers",
        "fields_memo", "auth_memo", "rest_memo", "prev", "chunk",
    )

    def __init__(self, state: WorkerState, scheme: str) -> None:
        self.state = state
        self.rt = state.runtime
        self.loop = state.loop
        self.scheme = scheme
        lim = self.rt.limits
        self.max_head = lim.max_header_bytes
        self.max_headers = lim.max_headers
        self.max_url = lim.max_url_bytes
        self.max_pipelined = lim.max_pipelined
        self.header_s = self.rt.timeouts.header_s
        self.body_s = self.rt.timeouts.body_s
        self.keepalive_s = self.rt.timeouts.keepalive_s
        self.log_enabled = state.recording
        self.ids = state.ids
        self.max_body_any = self.rt.max_body_any
        self.transport: Any = None
        self.wbuf: bytes | list[bytes] | None = None  # this loop iteration's output (output.py)
        self.parser: HttpRequestParser | None = None
        self.client_ip = ""
        self.closed = False
        self.accepting = True
        self.queue: deque[Request] = deque()   # requests whose head is complete, not served yet
        self.active: Request | None = None     # the one being served
        self.cur: Request | None = None        # the one being parsed
        self.cur_pending: Request | None = None  # the last whose head was complete (its body)
        self.url = b""
        self.in_head = True
        self.head_bytes = 0
        self.head_open = False    # a request head has begun and is not complete yet
        self.paused = 0
        self.deadline = 0.0
        self.error: GatewayError | None = None
        self.poisoned: GatewayError | None = None  # parse error to answer after the active request
        self.tunnel: Any = None
        self.after_upgrade: list[bytes] | None = None
        self.seen_any = False
        self.head_began = False
        # The last request's fields and what read_fields made of them: clients on a keep-alive
        # connection tend to send the same fields every time (HPACK exploits the same thing).
        self.fields: list[tuple[bytes, bytes]] = []  # the raw fields of the head being parsed
        self.trailers = 0
        self.fields_memo: tuple[list[tuple[bytes, bytes]], str, list[tuple[bytes, bytes]],
                                HeadFacts, int] | None = None  # ..., the fields' size
        # The last request a route allowed on this connection (pipeline._auth_forward): (route,
        # fields, method, query, params) then (identity, outcome, forwarded fields and query).
        self.auth_memo: tuple[Any, ...] | None = None
        # The last upstream header block built for this client (pipeline._forward).
        self.rest_memo: tuple[list[tuple[bytes, bytes]], Any, bytes] | None = None
        self.prev = b""           # the previous read, for checks spanning two reads
        self.chunk = b""          # the read being parsed (a reference, not a copy)

    # -- connection lifecycle --------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=256 * 1024)
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else "-"
        self.parser = HttpRequestParser(self)
        # Only this leniency: answer the request before `Connection: close`, ignore the rest
        # (facts §4). Every other leniency re-opens a smuggling shape.
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.deadline = self.loop.time() + self.header_s
        self.state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        if self.tunnel is not None:
            t, self.tunnel = self.tunnel, None
            t.close()
        p = self.active
        if p is not None and p.exchange is not None:
            p.exchange.abort()
            self.state.log(p, 499, p.body_bytes, p.exchange.bytes_out, p.exchange.target_url,
                           "client_closed")
        self.active = None
        self.queue.clear()

    def eof_received(self) -> bool:
        """The client shut down its sending side: answer what it sent, then close."""
        if self.active is not None or self.queue:
            # The last request it sent is the last to answer; the ones before it keep the
            # connection for the rest (marking them all closed it after the first answer).
            last = self.queue[-1] if self.queue else self.active
            last.keep_alive = False  # type: ignore[union-attr]  # one of the two is set
            return True  # keep the transport open for writing the answers
        # Idle: close through close(), which first writes this iteration's output (the last
        # answer may still be in wbuf). Returning False let the transport close itself and
        # drop it: the fuzzer's half-closed pipelines lost their last answer.
        self.close()
        return True

    # -- reading ------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.send(data)
            return
        if self.after_upgrade is not None:
            self.after_upgrade.append(data)  # tunnel bytes that arrived before the 101
            return
        parser = self.parser
        if parser is None or self.closed:
            return
        if self.in_head and self.head_bytes + len(data) > self.max_head:
            self._feed_capped(parser, data)  # a large head, or a burst of pipelined requests
            return
        try:
            self._feed(parser, data)
        except HttpParserUpgrade as exc:
            self._on_upgrade(data[exc.args[0]:])
        except (HttpParserError, GatewayError) as exc:
            self._parse_failed(self._parse_error(exc))
            return
        if self.active is None or self.queue:
            self._pump()

    def _feed_capped(self, parser: HttpRequestParser, data: bytes) -> None:
        try:
            while data:
                if self.in_head and self.head_bytes + len(data) > self.max_head:
                    # Cap bytes before llhttp buffers them: its header buffering is quadratic
                    # in the value size (facts §3). _count_head does the exact accounting.
                    allow = self.max_head - self.head_bytes + 1
                    chunk, data = data[:allow], data[allow:]
                else:
                    chunk, data = data, b""
                self._feed(parser, chunk)
        except HttpParserUpgrade as exc:
            self._on_upgrade(chunk[exc.args[0]:] + data)
        except (HttpParserError, GatewayError) as exc:
            self._parse_failed(self._parse_error(exc))
            return
        self._pump()

    def _feed(self, parser: HttpRequestParser, chunk: bytes) -> None:
        self.head_began = False
        self.chunk = chunk
        parser.feed_data(chunk)
        self.prev = chunk
        if self.head_open:
            self._count_head(len(chunk))

    def _parse_error(self, exc: Exception) -> GatewayError:
        """Ours as raised, or the one a callback recorded before llhttp wrapped it, or llhttp's."""
        if isinstance(exc, GatewayError):
            return exc
        return self.error or classify_parser_error(exc)

    def _count_head(self, fed: int) -> None:
        """After a feed that left a head incomplete (head_open): account its bytes.

        head_began: the head began inside this chunk (count what the callbacks saw); else it
        began in an earlier read and grew by the whole chunk."""
        if not self.head_began:
            self.head_bytes += fed
        else:
            self.head_bytes = self._head_size()
        if self.head_bytes > self.max_head:
            raise self._fail(HeadersTooLarge("request head too large", close=True))

    def _parse_failed(self, err: GatewayError) -> None:
        """The byte stream is broken: never parse again on this connection.

        The request being parsed is dropped (llhttp may fail after its head was complete, and
        it must not reach an upstream). Requests parsed whole before it are still answered in
        order; the error answer follows them, then the connection closes.
        """
        self.parser = None
        cp = self.cur_pending
        if cp is not None and not cp.body_done and cp in self.queue:
            self.queue.remove(cp)
        active = self.active
        if active is not None and not active.body_done:
            self._reject(err)
            return
        if active is not None or self.queue:
            self.poisoned = err
            self._pump()
            return
        self._reject(err)

    def _fail(self, err: GatewayError) -> GatewayError:
        self.error = err
        return err

    def _on_upgrade(self, rest: bytes) -> None:
        """llhttp saw Upgrade or CONNECT: stop parsing for good (facts §5)."""
        self.parser = None
        req = self.queue[-1] if self.queue else None
        if req is None or req.method == "CONNECT":
            self._reject(BadRequest("CONNECT is not supported", close=True, code="connect"))
            return
        req.body_done = True
        if req.chunked or req.content_length:
            # The body was not consumed by the parser (facts §5); re-framing it is not worth
            # the smuggling risk.
            self._reject(BadRequest("protocol upgrade with a body", close=True, code="bad_upgrade"))
            return
        if req.method == "GET" and req.version == "1.1" and req.upgrade is not None \
                and req.upgrade.lower() == b"websocket":
            self.after_upgrade = [rest] if rest else []
        else:
            # Another protocol (h2c, ...): serve the request as plain HTTP/1.1, then close;
            # the parser is gone, so later bytes are ignored.
            req.upgrade = None
            req.keep_alive = False
        self._pump()

    # -- httptools callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        req = Request()
        req.start = self.loop.time()
        self.cur = req
        self.url = b""
        self.fields = []
        self.head_open = True
        self.seen_any = True
        self.head_began = True
        if not self.deadline or self.active is None:
            self.deadline = req.start + self.header_s

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.max_url:
            raise self._fail(UriTooLong("request target too long", close=True))

    def on_header(self, name: bytes, value: bytes) -> None:
        # Raw pairs only: lower-casing, stripping, the count and the size check happen once
        # per head in on_headers_complete (and not at all when the client repeats its last
        # fields). The list cannot grow past the head's byte cap (data_received) meanwhile.
        if self.in_head:
            self.fields.append((name, value))
        else:  # a trailer: counted, never merged into the request headers (facts §1)
            self.trailers += 1
            if self.trailers > self.max_headers:
                raise self._fail(HeadersTooLarge("too many trailer fields", close=True))

    def _head_size(self) -> int:
        fields = self.fields
        return len(self.url) + 4 * len(fields) + sum([len(n) + len(v) for n, v in fields])

    def on_headers_complete(self) -> None:
        req: Request = self.cur  # type: ignore[assignment]  # set by on_message_begin
        parser: HttpRequestParser = self.parser  # type: ignore[assignment]  # feeding it
        self.in_head = False
        self.head_open = False
        version = parser.get_http_version()
        # An RTSP/ICE request line reports version 1.0 (facts §1); only then look at the bytes.
        foreign = version == "1.0" and foreign_protocol(self.prev[-64:], self.chunk, self.url)
        fields = self.fields
        try:
            read_request_line(req, version, parser.get_method(), self.url, foreign)
            memo = self.fields_memo
            lowered = None
            if memo is not None and memo[1] == version:
                if memo[0] == fields:
                    lowered, size = memo[2], memo[4]
                elif len(memo[0]) == len(fields):
                    fresh = refresh_fields(memo[0], memo[2], fields)
                    if fresh is not None:
                        lowered, size = fresh[0], memo[4] + fresh[1]
                        self.fields_memo = (fields, version, lowered, memo[3], size)
            if lowered is not None:
                # The last request's field names, with new values (if any) only outside the
                # fields read_fields reads (a new token each time): the same checks passed,
                # the same facts. The list is shared: nothing changes a request's fields
                # after parsing. Only the target and those values can change the size.
                if size + len(self.url) > self.max_head:
                    raise HeadersTooLarge("request head too large", close=True)
                req.headers = lowered
                (req.host_header, req.host, req.content_length, req.chunked,
                 req.expect_continue, req.upgrade, req.request_id) = memo[3]  # type: ignore[index]  # see HeadFacts
            else:
                size = self._head_size()
                if size > self.max_head:
                    raise HeadersTooLarge("request head too large", close=True)
                if len(fields) > self.max_headers:
                    raise HeadersTooLarge("too many header fields", close=True)
                req.headers = [(n.lower(), v.rstrip(b" \t")) for n, v in fields]
                self.fields_memo = (fields, version, req.headers, read_fields(req),
                                    size - len(self.url))
        except GatewayError as err:
            raise self._fail(err) from None
        req.client_ip = self.client_ip
        req.scheme = self.scheme
        req.keep_alive = parser.should_keep_alive()
        if req.upgrade is not None and not parser.should_upgrade():
            req.upgrade = None
        rid = req.request_id
        req.request_id = self.ids.next(rid) if rid else self.ids.fresh()
        req.limit = self.max_body_any
        self.cur_pending = req
        if req.content_length is not None and req.content_length > req.limit:
            raise self._fail(PayloadTooLarge("request body too large", close=True))
        self.queue.append(req)
        if len(self.queue) > self.max_pipelined:
            raise self._fail(BadRequest("too many pipelined requests", close=True,
                                        code="pipeline_overflow"))
        if req.chunked or req.content_length:
            self.deadline = self.loop.time() + self.body_s
        else:
            self.deadline = 0.0

    def on_body(self, body: bytes) -> None:
        p = self.cur_pending
        assert p is not None
        p.body_bytes += len(body)
        if p.body_bytes > p.limit:
            raise self._fail(PayloadTooLarge("request body too large", close=True))
        self.deadline = self.loop.time() + self.body_s
        ex = p.exchange
        if ex is not None:
            ex.request_body(body)
        else:
            self.buffer_body(p, body)

    def buffer_body(self, p: Request, body: bytes) -> None:
        """Hold body bytes until an upstream connection takes them; pause reading past a cap."""
        if p.body is None:
            p.body = [body]
        else:
            p.body.append(body)
        p.buffered += len(body)
        if p.buffered > _MAX_BUFFERED_BODY:
            self.pause_reading_for(PAUSE_BUFFER)

    def body_flushed(self) -> None:
        self.resume_reading_for(PAUSE_BUFFER)

    def on_message_complete(self) -> None:
        p = self.cur_pending
        self.in_head = True
        self.head_bytes = 0
        # Nothing of a next head yet: if one begins in this read, on_message_begin says so.
        self.head_began = False  # (fields and url are reset by the next on_message_begin)
        self.trailers = 0
        if p is not None:
            p.body_done = True
            if p.exchange is not None:
                p.exchange.request_done()
            if self.deadline and p is self.active:
                self.deadline = 0.0
