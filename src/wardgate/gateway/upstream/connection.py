"""One keep-alive connection to an upstream target, parsed with httptools' response parser.

It relays parse events to the exchange currently using it and decides, when a response
completes, whether the connection may go back to the pool (data-plane facts §6: only after a
complete keep-alive message, a fully written request, no upgrade and nothing unsolicited).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from wardgate.errors import BadGateway
from wardgate.gateway.headers import field_pairs, response_block_fast, response_head
from wardgate.gateway.output import Output

# Client read-pause reason used when this upstream cannot take more request bytes.
PAUSE_UPSTREAM = 2
# A response head larger than this, or with more fields, is a 502 (a broken or hostile upstream).
MAX_RESPONSE_HEAD = 64 * 1024
MAX_RESPONSE_HEADERS = 256

if TYPE_CHECKING:
    from wardgate.gateway.upstream.cluster import Target

# Response framing as seen from the upstream side.
FRAME_NONE, FRAME_LENGTH, FRAME_CHUNKED, FRAME_CLOSE = 0, 1, 2, 3


# Output only, not asyncio.Protocol: every protocol method is defined here (see protocol.py).
class UpstreamConnection(Output):
    __slots__ = (
        "target", "transport", "wbuf", "parser", "exchange", "uses", "idle_since", "closed",
        "_headers", "_raw", "_pos", "_interim", "_complete", "_dirty", "_framing", "_status",
        "_tunnel", "_memo_in", "_memo_out", "_repeat_head", "_repeat_total", "_repeat",
        "_paused", "_ignore", "_head_bytes",
    )

    def __init__(self, target: Target) -> None:
        self.target = target
        self.transport: Any = None
        self.wbuf: bytes | list[bytes] | None = None  # this loop iteration's output (output.py)
        self.parser = HttpResponseParser(self)
        self.exchange: Any = None
        self.uses = 0
        self.idle_since = 0.0
        self.closed = False
        self._headers: list[tuple[bytes, bytes]] = []  # fields of a 101 response
        self._raw = b""           # bytes read since the request went out, until the final head
        self._pos = 0             # where the next head starts in _raw (after interim 1xx heads)
        # The last head given to response_block_fast and its result (a pure function).
        self._memo_in = b""
        self._memo_out: tuple[bytes, bytes | None] | None = None
        # The last keep-alive HTTP/1.1 response head (status line to blank line) with a
        # Content-Length that llhttp accepted at the start of a message, the whole response's
        # size (0: none yet), and what that head was read as: (status, rewrite, length). Kept
        # together and apart from _memo_in/_memo_out, which other heads replace meanwhile.
        self._repeat_head = b""
        self._repeat_total = 0
        self._repeat: tuple[int, bytes, bytes] | None = None
        self._interim = False
        self._complete = False
        self._dirty = False       # the connection can no longer be trusted for reuse
        self._framing = FRAME_NONE
        self._status = 0
        self._tunnel: Any = None  # client protocol once a 101 switched to a raw tunnel
        self._paused = False
        self._ignore = False      # an unsolicited message after the response: drop its events
        self._head_bytes = 0      # bytes read while waiting for the response head

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=256 * 1024)

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel.tunnel_write(data)
            return
        ex = self.exchange
        if ex is None:
            # Bytes while idle in the pool: the upstream is out of sync; never reuse it.
            self.close()
            return
        if not self._status and not self._raw and len(data) == self._repeat_total \
                and data.startswith(self._repeat_head) and not ex.head_request:
            self._repeat_response(ex, data)
            return
        if not self._status and self._head_bytes + len(data) > MAX_RESPONSE_HEAD:
            # Bound the response head before llhttp buffers it (facts §3 applies here too):
            # feed only what a head may still take; the rest once the head is complete.
            allow = MAX_RESPONSE_HEAD - self._head_bytes
            first, data = data[:allow], data[allow:]
            self.data_received(first)
            if self.exchange is not ex or self._tunnel is not None:
                return  # failed, finished or switched to a tunnel on the first part
            if not self._status:
                self._fail(ex, "upstream response head too large")
                return
            if not data:
                return
        elif not self._status:
            self._head_bytes += len(data)
            self._raw = self._raw + data if self._raw else data
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as exc:
            if self._status == 101 and ex.wants_upgrade:
                self.exchange = None
                self._tunnel = ex.client
                ex.on_upgrade(self, self._status, self._headers, data[exc.args[0]:])
            else:
                self._fail(ex, "unexpected protocol switch from upstream")
            return
        except HttpParserError:
            if self._complete:
                # Bytes after a complete response (after `Connection: close`, or a body on a
                # 204): relay the response, never reuse the connection (facts §6).
                self._dirty = True
                self._finish(ex)
                return
            self._fail(ex, "malformed response from upstream")
            return
        if self._complete:
            self._finish(ex)
        else:
            ex.flush()

    def eof_received(self) -> bool:
        ex = self.exchange
        if ex is not None and self._framing == FRAME_CLOSE and self._status:
            self._complete = True
            self._dirty = True
            self._finish(ex)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.target.forget(self)
        tunnel, self._tunnel = self._tunnel, None
        if tunnel is not None:
            tunnel.tunnel_closed()
            return
        ex = self.exchange
        if ex is not None:
            if self._framing == FRAME_CLOSE and self._status:
                self._complete = True
                self._dirty = True
                self._finish(ex)
            else:
                self.exchange = None
                ex.on_upstream_lost(self, got_response=bool(self._status))

    def pause_writing(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.client.pause_reading_for(PAUSE_UPSTREAM)
        elif self._tunnel is not None:
            self._tunnel.pause_reading_for(PAUSE_UPSTREAM)

    def resume_writing(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.client.resume_reading_for(PAUSE_UPSTREAM)
        elif self._tunnel is not None:
            self._tunnel.resume_reading_for(PAUSE_UPSTREAM)

    # -- httptools callbacks ----------------------------------------------------------------
    # Neither on_message_begin nor on_header: httptools skips callbacks a protocol does not
    # define. The head is taken from the bytes llhttp just accepted (headers.field_pairs /
    # response_block_fast); a second message after a complete one is caught here.
    def on_headers_complete(self) -> None:
        if self._complete or self._ignore:
            # A second message in the same read: the upstream answered more than it was asked.
            self._dirty = True
            self._ignore = True
            return
        raw, pos = self._raw, self._pos
        end = raw.find(b"\r\n\r\n", pos)
        first = raw.find(b"\r\n", pos)
        block = raw[first:end]
        status = self.parser.get_status_code()
        if status < 200 and status != 101:
            self._interim = True  # 100/103: interim; the final response follows (facts §6)
            self._pos = end + 4
            return
        self._status = status
        self._raw = b""
        if status == 101:
            self._headers = field_pairs(block)
            return  # delivered from the HttpParserUpgrade handler
        ex = self.exchange
        no_body = status in (204, 304) or ex.head_request
        if not self.parser.should_keep_alive():
            self._dirty = True
        if not no_body and block == self._memo_in:
            fast = self._memo_out  # the same head as the last response (often: within a second)
        else:
            if block.count(b"\r\n") > MAX_RESPONSE_HEADERS:
                raise ValueError("too many response header fields")  # -> HttpParserError: 502
            fast = None if no_body else response_block_fast(block)
            if fast is not None:
                self._memo_in, self._memo_out = block, fast
        if fast is not None:
            out, length = fast
            self._framing = FRAME_LENGTH if length is not None else FRAME_CLOSE
            if length is not None and pos == 0 and not self._dirty and raw.startswith(b"HTTP/1.1 "):
                self._repeat_head = raw[:end + 4]
                self._repeat_total = end + 4 + int(length)
                self._repeat = (status, out, length)
            ex.on_response_head(status, out, self._framing, length, True)
            return
        head = response_head(field_pairs(block))
        if no_body:
            framing = FRAME_NONE
        elif head.length is not None:
            framing = FRAME_LENGTH
        elif head.coding is not None:
            if head.coding != b"chunked":
                # gzip & co. would reach the client undeclared once the hop-by-hop
                # Transfer-Encoding is stripped: refuse rather than corrupt (502).
                raise ValueError("unsupported transfer coding")
            framing = FRAME_CHUNKED
        else:
            framing = FRAME_CLOSE
        self._framing = framing
        lines = head.lines
        ex.on_response_head(status, b"\r\n" + b"\r\n".join(lines) if lines else b"", framing,
                            head.length, False)
        if ex.head_request:
            # The parser cannot be told a HEAD response has no body: end it here (facts §6).
            self._complete = True

    def _repeat_response(self, ex: Any, data: bytes) -> None:
        """A whole response, alone in this read, whose head is byte for byte the last
        repeatable one llhttp accepted at the start of a message on this connection (often:
        the same head within the same second), and whose body is exactly its Content-Length.
        llhttp would parse it the same way and end at the start of the next message, where it
        already is; so that head's rewrite and framing are reused, and the body is the rest of
        the read."""
        n = len(self._repeat_head)
        self._status, out, length = self._repeat  # type: ignore[misc]  # set with the head
        self._framing = FRAME_LENGTH
        ex.on_response_head(self._status, out, FRAME_LENGTH, length, True)
        if len(data) > n:
            ex.on_response_body(data[n:])
        self._complete = True
        self._finish(ex)

    def on_body(self, body: bytes) -> None:
        if self._ignore:
            return
        if self._complete:
            self._dirty = True  # body bytes after a HEAD response: desynchronised
            return
        self.exchange.on_response_body(body)

    def on_message_complete(self) -> None:
        if self._ignore:
            return
        if self._interim:
            self._interim = False
            return
        if self._status == 101:
            return  # only a real upgrade (HttpParserUpgrade) completes a 101 (facts §6)
        self._complete = True

    # -- lifecycle --------------------------------------------------------------------------
    def begin(self, exchange: Any) -> None:
        self.exchange = exchange
        self._raw = b""
        self._pos = 0
        self.uses += 1
        self._complete = False
        self._ignore = False
        self._head_bytes = 0
        self._status = 0
        self._framing = FRAME_NONE
        if self._paused:
            self._paused = False
            self.transport.resume_reading()

    def _finish(self, ex: Any) -> None:
        self.exchange = None
        if self._paused:  # a paused idle connection would never notice the peer closing
            self.resume_reading()
        reusable = not self._dirty and not self.closed and ex.request_complete
        if ex.head_request:
            self.parser = HttpResponseParser(self)
        if reusable:
            self.target.release(self)
        else:
            self.close()
        ex.on_response_end()

    def _fail(self, ex: Any, detail: str) -> None:
        self.exchange = None
        self.close()
        ex.on_upstream_error(self, BadGateway(detail, code="upstream_protocol"))

    def pause_reading(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self._dirty = True
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.flush_output()  # close() sends what the transport holds: ours first
                self.transport.close()
        self.target.forget(self)

    def abort(self) -> None:
        self._dirty = True
        self.closed = True
        self.drop_output()
        if self.transport is not None:
            self.transport.abort()
        self.target.forget(self)
