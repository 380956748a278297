"""One JSON line per request. Never a header value: tokens and cookies cannot leak from here.

Lines are buffered and written by the worker's sweeper (and when the buffer grows), so a
request never waits on a write syscall for its log line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wardgate.gateway.request import Request

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


class AccessLog:
    def __init__(self, path: str, include_query: bool, enabled: bool = True) -> None:
        self.enabled = enabled
        self.include_query = include_query
        self._buf: list[str] = []
        self._size = 0
        self._stream: IO[str]
        if path == "-":
            self._stream = sys.stdout
            self._own = False
        else:
            self._stream = open(path, "a", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
            self._own = True
        self._sec = -1
        self._stamp = ""
        self.pid = os.getpid()

    def _now(self) -> str:
        t = time.time()
        sec = int(t)
        if sec != self._sec:
            self._sec = sec
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self._stamp}.{int((t - sec) * 1000):03d}Z"

    def record(self, req: Request, status: int, bytes_in: int, bytes_out: int, target: str,
               error: str | None, duration_ms: float) -> None:
        if not self.enabled:
            return
        path = req.path
        if self.include_query and req.query:
            path = path + "?" + req.query.decode("latin-1")
        route = req.route
        entry: dict[str, Any] = {
            "time": self._now(),
            "request_id": req.request_id.decode("latin-1"),
            "client": req.client_ip,
            "method": req.method or "-",
            "path": path,
            "route": route.name if route is not None else "-",
            "target": target,
            "status": status,
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "duration_ms": round(duration_ms, 3),
            "auth": req.auth_outcome,
        }
        ident = req.identity
        if ident is not None:
            entry["provider"] = getattr(ident, "provider", None)
            entry["sub_hash"] = getattr(ident, "sub_hash", None)
        if error is not None:
            entry["error"] = error
        line = _dumps(entry)
        self._buf.append(line)
        self._size += len(line)
        if self._size > 64 * 1024:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            data = "\n".join(self._buf) + "\n"
            self._buf = []
            self._size = 0
            try:
                self._stream.write(data)
                self._stream.flush()
            except (OSError, ValueError):
                pass  # a full disk or closed stdout must not take the data plane down

    def close(self) -> None:
        self.flush()
        if self._own:
            self._stream.close()
