"""Pre-built status lines, so no response formats its first line at request time."""

from __future__ import annotations

from http import HTTPStatus

_REASONS = {s.value: s.phrase for s in HTTPStatus}


def _line(code: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (code, _REASONS.get(code, "Status").encode())


STATUS_LINES: dict[int, bytes] = {code: _line(code) for code in range(100, 1000)}
