"""Serve the admin app from a thread of the supervisor (uvicorn; loopback by default)."""

from __future__ import annotations

import threading
import time

import uvicorn

from wardgate.admin.app import build_app
from wardgate.admin.view import AdminView
from wardgate.config.common import parse_hostport


class AdminServer:
    def __init__(self, view: AdminView, listen: str) -> None:
        host, port = parse_hostport(listen)
        config = uvicorn.Config(build_app(view), host=host, port=port, log_level="warning",
                                access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="wardgate-admin",
                                        daemon=True)

    def start(self, timeout: float = 10.0) -> bool:
        """Start listening; False when the port could not be bound in time."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._server.started:
                return True
            if not self._thread.is_alive():
                return False
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5.0)
