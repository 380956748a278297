"""For synchronous frameworks (Flask, Django, plain WSGI): the same checks, called blocking.

Zero-trust mode keeps a key set that refreshes in the background, which needs an event loop.
`BlockingAuth` owns one on a private daemon thread; every verification runs there, so the
verified-token cache and the key ring are only ever touched by that one thread (no locks).
Trusted-gateway mode does no I/O and is answered on the caller's thread.

    auth = BlockingAuth(ServiceAuth.zero_trust("http://127.0.0.1:9000", "api"))
    identity = auth.authenticate(request.headers, peer=request.remote_addr)
    require_scopes("orders:read").check(identity)
    ...
    auth.close()
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from wardgate.auth.identity import Identity
from wardgate.service.auth import ServiceAuth
from wardgate.service.headers import HeaderInput, normalize

T = TypeVar("T")


class BlockingAuth:
    def __init__(self, auth: ServiceAuth, *, timeout_s: float = 10.0) -> None:
        self.auth = auth
        self.timeout_s = timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        if auth.tokens is not None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                            name="wardgate-service-keys")
            self._thread.start()
            self._call(auth.start())  # degraded start: 503s until the keys arrive

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("BlockingAuth is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout_s)

    def authenticate(self, headers: HeaderInput, *, peer: str | None = None,
                     query: str | bytes = b"") -> Identity:
        """The caller's Identity, or raise the same AuthError as the async API."""
        hdrs = normalize(headers)
        if self.auth.gateway is not None:
            return self.auth.gateway.identity(hdrs, peer)
        q = query.encode("latin-1", "replace") if isinstance(query, str) else query
        return self._call(self.auth.authenticate(hdrs, peer=peer, query=q))

    def ready(self) -> bool:
        return self.auth.ready()

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._call(self.auth.stop())
        self._loop = self._thread = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(self.timeout_s)
        loop.close()

    def __enter__(self) -> BlockingAuth:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
