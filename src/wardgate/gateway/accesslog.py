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
_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]  # a quoted JSON string


def _identity_fields(ident: Any) -> str:
    provider = _dumps(getattr(ident, "provider", None))
    return f',"provider":{provider},"sub_hash":{_dumps(getattr(ident, "sub_hash", None))}'



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
               error: str | None, duration_ms: float, retried: str | None = None) -> None:
        """`retried`: the error code of a first try that failed and was retried (the request's
        outcome is `status`/`error`, from the retry)."""
        if not self.enabled:
            return
        path = req.path
        if self.include_query and req.query:
            path = path + "?" + req.query.decode("latin-1")
        route = req.route
        ident = req.identity
        # Formatted by hand (json.dumps of a dict per request cost as much as proxying it);
        # every value a client can influence goes through the JSON string encoder.
        rid = _str(req.request_id.decode("latin-1"))
        name = _str(route.name) if route is not None else '"-"'
        extra = _identity_fields(ident) if ident is not None else ""
        trace = req.trace
        if trace is not None:  # hex digits only (validated or ours): no escaping needed
            extra += ',"trace_id":"' + trace[0].decode() + '","span_id":"' \
                + trace[1].decode() + '"'
        if error is not None:
            extra += ',"error":' + _str(error)
            if req.rate_limit is not None:
                extra += ',"rate_limit":' + _str(req.rate_limit)
        if retried is not None:
            extra += ',"retried":' + _str(retried)
        line = (f'{{"time":"{self._now()}","request_id":{rid},"client":{_str(req.client_ip)},'
                f'"method":{_str(req.method or "-")},"path":{_str(path)},"route":{name},'
                f'"target":{_str(target)},"status":{status},"bytes_in":{bytes_in},'
                f'"bytes_out":{bytes_out},"duration_ms":{round(duration_ms, 3)},'
                f'"auth":{_str(req.auth_outcome)}{extra}}}')
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
