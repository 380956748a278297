"""Real Redis servers for tests: `redis-server` on free loopback ports, a single node or a
3-master Redis Cluster made with `redis-cli --cluster create`. Stopped by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.gateway import free_port


def _ask(port: int, *args: str, timeout: float = 1.0) -> bytes:
    cmd = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(cmd)
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        # a bulk reply: read until its announced length is in
        if data.startswith(b"$") and not data.startswith(b"$-1"):
            n = int(data[1:data.index(b"\r\n")])
            while len(data) < data.index(b"\r\n") + 2 + n + 2:
                data += s.recv(65536)
        return data


def _low_free_port() -> int:
    """A free port below 55536: Redis refuses higher ones in cluster mode (port + 10000)."""
    for _ in range(200):
        port = free_port()
        if port <= 55535:
            return port
    raise RuntimeError("no free port below 55536")


class RedisServer:
    def __init__(self, workdir: Path, *, cluster: bool = False, port: int | None = None) -> None:
        self.port = port or _low_free_port()
        self.bus_port = _low_free_port() if cluster else 0
        self.dir = workdir / f"redis-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cluster = cluster
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0" if not self.cluster else \
            f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                "--logfile", str(self.dir / "redis.log"), "--protected-mode", "yes"]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-port", str(self.bus_port),
                     "--cluster-config-file",
                     str(self.dir / "nodes.conf"), "--cluster-node-timeout", "2000"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if _ask(self.port, "PING").startswith(b"+PONG"):
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited {self.proc.returncode}")
            time.sleep(0.05)
        raise TimeoutError("redis-server did not answer PING")

    def command(self, *args: str) -> bytes:
        return _ask(self.port, *args)

    def pause(self, ms: int) -> None:
        """Make the server stop answering clients for `ms` (CLIENT PAUSE): a slow Redis."""
        self.command("CLIENT", "PAUSE", str(ms), "ALL")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


class RedisCluster:
    """Three masters, no replicas, slots spread by redis-cli."""

    def __init__(self, workdir: Path) -> None:
        self.nodes = [RedisServer(workdir, cluster=True) for _ in range(3)]

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self, timeout: float = 30.0) -> RedisCluster:
        for n in self.nodes:
            n.start()
        addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(["redis-cli", "--cluster", "create", *addrs, "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(b"cluster_state:ok" in n.command("CLUSTER", "INFO") for n in self.nodes):
                return self
            time.sleep(0.1)
        raise TimeoutError("cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()
