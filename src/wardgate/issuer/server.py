"""Run the issuer under uvicorn: in the foreground (`wardgate issuer`) or in a thread (demo).

One process; the database is the shared state.
"""

from __future__ import annotations

import threading
import time

import uvicorn

from wardgate.config.common import parse_hostport
from wardgate.config.issuer import IssuerConfig
from wardgate.issuer.app import create_app


def _server(cfg: IssuerConfig, log_level: str) -> uvicorn.Server:
    host, port = parse_hostport(cfg.listen, 9000)
    config = uvicorn.Config(create_app(cfg), host=host, port=port, log_level=log_level,
                            access_log=False, server_header=False, proxy_headers=False,
                            h11_max_incomplete_event_size=16 * 1024)
    return uvicorn.Server(config)


def serve(cfg: IssuerConfig, *, log_level: str = "info") -> None:
    _server(cfg, log_level).run()


class BackgroundIssuer:
    """An issuer on its own thread and event loop; `stop()` shuts it down cleanly."""

    def __init__(self, cfg: IssuerConfig, log_level: str = "warning") -> None:
        self.cfg = cfg
        self.url = cfg.issuer
        self._server = _server(cfg, log_level)
        self._thread = threading.Thread(target=self._server.run, name="wardgate-issuer",
                                        daemon=True)

    def start(self, timeout_s: float = 20.0) -> BackgroundIssuer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("issuer did not start (see its log)")
            time.sleep(0.05)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)


def start_background(cfg: IssuerConfig, *, log_level: str = "warning") -> BackgroundIssuer:
    """Start the issuer in this process (for `wardgate demo`); returns once it listens."""
    return BackgroundIssuer(cfg, log_level).start()
