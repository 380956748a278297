"""RESP2, the Redis wire protocol, without I/O: commands to bytes, bytes to replies.

Replies are Python values: simple strings as `str`, integers as `int`, bulk strings as `bytes`
(None for the null bulk), arrays as `list` (None for the null array) and error replies as
`ReplyError` instances (returned, not raised: one bad reply must not lose the rest of a
pipelined read).
"""

from __future__ import annotations

from typing import Any

_CRLF = b"\r\n"
#: bounds on what a server may make us hold: a reply this big is a protocol error, not data
MAX_BULK = 64 * 1024 * 1024
MAX_ARRAY = 1 << 20
MAX_DEPTH = 8


class ProtocolError(Exception):
    """The server sent bytes that are not RESP2: the connection cannot be trusted any more."""


class ReplyError:
    """An error reply (`-ERR ...`, `-MOVED 3999 127.0.0.1:6381`, `-NOSCRIPT ...`)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    @property
    def kind(self) -> str:
        return self.message.split(" ", 1)[0]

    def __repr__(self) -> str:
        return f"ReplyError({self.message!r})"


def encode(*args: bytes | str | int) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = b"%d" % a
        parts.append(b"$%d\r\n" % len(a))
        parts.append(a)
        parts.append(_CRLF)
    return b"".join(parts)


class _Incomplete(Exception):
    pass


class Parser:
    """Incremental: feed() whatever arrived, get back every complete reply in order."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[Any]:
        buf = self._buf + data if self._buf else data
        out: list[Any] = []
        pos = 0
        end = len(buf)
        while pos < end:
            try:
                value, pos2 = self._parse(buf, pos, 0)
            except _Incomplete:
                break
            out.append(value)
            pos = pos2
        self._buf = buf[pos:]
        if len(self._buf) > MAX_BULK + 64:
            raise ProtocolError("reply too large")
        return out

    def _line(self, buf: bytes, pos: int) -> tuple[bytes, int]:
        nl = buf.find(_CRLF, pos)
        if nl < 0:
            if len(buf) - pos > 4096:
                raise ProtocolError("header line too long")
            raise _Incomplete
        return buf[pos:nl], nl + 2

    def _int(self, text: bytes) -> int:
        if not text or not (text.isdigit() or (text[:1] == b"-" and text[1:].isdigit())):
            raise ProtocolError(f"bad integer {text[:32]!r}")
        return int(text)

    def _parse(self, buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
        kind = buf[pos]
        line, pos = self._line(buf, pos + 1)
        if kind == 0x2B:  # '+'
            return line.decode("utf-8", "replace"), pos
        if kind == 0x3A:  # ':'
            return self._int(line), pos
        if kind == 0x24:  # '$'
            n = self._int(line)
            if n == -1:
                return None, pos
            if n < 0 or n > MAX_BULK:
                raise ProtocolError(f"bad bulk length {n}")
            if len(buf) < pos + n + 2:
                raise _Incomplete
            if buf[pos + n:pos + n + 2] != _CRLF:
                raise ProtocolError("bulk string not terminated by CRLF")
            return buf[pos:pos + n], pos + n + 2
        if kind == 0x2A:  # '*'
            n = self._int(line)
            if n == -1:
                return None, pos
            if n < 0 or n > MAX_ARRAY:
                raise ProtocolError(f"bad array length {n}")
            if depth >= MAX_DEPTH:
                raise ProtocolError("arrays nested too deep")
            items = []
            for _ in range(n):
                if pos >= len(buf):
                    raise _Incomplete
                item, pos = self._parse(buf, pos, depth + 1)
                items.append(item)
            return items, pos
        if kind == 0x2D:  # '-'
            return ReplyError(line.decode("utf-8", "replace")), pos
        raise ProtocolError(f"unknown reply type {bytes([kind])!r}")
