"""Start and stop the processes a benchmark needs, each in its own process group.

Every process is started by us, recorded with its PID, and stopped by that PID (its group) at the
end, whatever happened in between.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil


def free_port() -> int:
    """A port that is free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpus: str, argv: list[str]) -> list[str]:
    """argv run on the given CPU list; taskset execs, so the PID stays the program's own."""
    return ["taskset", "-c", cpus, *argv]


@dataclass
class Managed:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class ProcessSet:
    """Owns every process the bench starts; stop_all() is safe to call more than once."""

    workdir: Path
    procs: list[Managed] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Managed:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() reaches its children too
                env=env,
                cwd=self.workdir,
            )
        managed = Managed(name, proc, log)
        self.procs.append(managed)
        return managed

    def stop(self, managed: Managed, timeout: float = 8.0) -> None:
        if managed in self.procs:
            self.procs.remove(managed)
        if not managed.alive():
            return
        pid = managed.pid
        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            children = []
        # The leader is not reaped yet, so its PID is still our process group's id.
        _signal_group(pid, signal.SIGTERM)
        try:
            managed.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(pid, signal.SIGKILL)
            managed.proc.wait(5)
        for child in children:  # psutil checks identity (create time), not just the PID
            try:
                child.wait(2)
            except psutil.TimeoutExpired:
                child.kill()
            except psutil.Error:
                pass

    def stop_all(self) -> None:
        for managed in reversed(list(self.procs)):
            try:
                self.stop(managed)
            except Exception as exc:  # keep stopping the rest
                print(f"warning: could not stop {managed.name} (pid {managed.pid}): {exc}")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_for_port(port: int, managed: Managed, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not managed.alive():
            raise RuntimeError(f"{managed.name} exited with code {managed.proc.returncode}:\n"
                               f"{managed.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{managed.name} did not listen on 127.0.0.1:{port} within {timeout:.0f}s:\n"
                       f"{managed.log_tail()}")
