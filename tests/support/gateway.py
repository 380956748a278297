"""Start the real gateway (`wardgate run`) as a subprocess on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.port = free_port()
        config.setdefault("listen", f"127.0.0.1:{self.port}")
        self.config = config
        self.workdir = workdir / f"gw-{self.port}"  # one folder per gateway: own config and logs
        self.workdir.mkdir(parents=True, exist_ok=True)
        workdir = self.workdir
        self.path = workdir / "gateway.yaml"
        self.log_path = workdir / "access.log"
        config.setdefault("access_log", {"path": str(self.log_path)})
        self.stderr_path = workdir / "gateway.err"
        self.proc: subprocess.Popen | None = None

    def write(self, config: dict[str, Any] | None = None) -> None:
        self.path.write_text(yaml.safe_dump(config or self.config, sort_keys=False))

    def start(self, timeout: float = 20.0) -> GatewayProcess:
        self.write()
        self._err = open(self.stderr_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wardgate", "run", "--config", str(self.path)],
            stdout=subprocess.DEVNULL, stderr=self._err, start_new_session=True,
        )
        self.wait_event("gateway_started", timeout)
        return self

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""

    def wait_event(self, name: str, timeout: float = 20.0, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stderr().count(f'"event":"{name}"') >= count:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited {self.proc.returncode}:\n{self.stderr()}")
            time.sleep(0.05)
        raise TimeoutError(f"no {name} event:\n{self.stderr()}")

    def access_log(self, wait_for: int = 1, timeout: float = 5.0) -> list[dict]:
        import json

        deadline = time.monotonic() + timeout
        lines: list[dict] = []
        while time.monotonic() < deadline:
            if self.log_path.exists():
                lines = [json.loads(x) for x in self.log_path.read_text().splitlines() if x]
                if len(lines) >= wait_for:
                    return lines
            time.sleep(0.05)
        return lines

    def worker_pids(self) -> list[int]:
        import psutil

        return [c.pid for c in psutil.Process(self.proc.pid).children()]

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._err.close()
        return self.proc.returncode


def raw_exchange(port: int, data: bytes, timeout: float = 3.0, chunks: list[bytes] | None = None,
                 delay: float = 0.0) -> tuple[bytes, bool]:
    """Send raw bytes, read until the peer closes or goes quiet. Returns (response, closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        for part in chunks or [data]:
            try:
                s.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
            if delay:
                time.sleep(delay)
        out = b""
        closed = False
        s.settimeout(0.5 if timeout > 0.5 else timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                buf = s.recv(65536)
            except TimeoutError:
                if out:
                    break
                continue
            except ConnectionResetError:
                closed = True
                break
            if not buf:
                closed = True
                break
            out += buf
        return out, closed
    finally:
        s.close()


def status_of(resp: bytes) -> int:
    line = resp.split(b"\r\n", 1)[0]
    return int(line.split()[1]) if line.startswith(b"HTTP/1.") else 0
