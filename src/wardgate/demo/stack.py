"""The demo's child processes: start each in its own process group, wait until it answers,
stop them all by PID (group), and wait for every one.

Own process groups keep a terminal's Ctrl-C away from the children, so the demo decides the
order of shutdown (gateway first, issuer last) and nothing is torn down half-way. PR_SET_PDEATHSIG
covers the case where the demo itself is killed with SIGKILL: the kernel then sends SIGTERM.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class StartError(RuntimeError):
    """A part of the demo did not start; the message says which and why."""


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=env, process_group=0, preexec_fn=_die_with_parent)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def exited(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float) -> None:
        """SIGTERM to the child (the gateway's supervisor drains its own workers), wait; on
        timeout SIGKILL its whole group, which holds those workers too."""
        proc = self.proc
        if proc is not None:
            pgid = proc.pid  # process_group=0: the child leads a group with its own PID
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(pgid, signal.SIGKILL)
                    proc.wait(5)
            _reap_group(pgid, timeout=2.0)
        if self._log is not None:
            self._log.close()
            self._log = None


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _reap_group(pgid: int, timeout: float) -> None:
    """Members can outlive the leader (a worker still draining): give them a moment, then
    SIGKILL. Only this child's own group is touched."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


def wait_until(child: Child, probe: Callable[[], bool], *, timeout: float,
               stop_requested: Callable[[], bool], what: str) -> None:
    """Poll `probe` until it says yes; fail early if the child exits or the user gives up."""
    deadline = time.monotonic() + timeout
    while True:
        code = child.exited()
        if code is not None:
            raise StartError(f"{child.name} exited with code {code} before it was ready "
                             f"(log: {child.log_path}):\n{child.log_tail()}")
        if stop_requested():
            raise KeyboardInterrupt
        with contextlib.suppress(httpx.HTTPError):
            if probe():
                return
        if time.monotonic() > deadline:
            raise StartError(f"{child.name} was not ready after {timeout:.0f}s: {what} "
                             f"(log: {child.log_path}):\n{child.log_tail()}")
        time.sleep(0.1)


def http_probe(url: str, accept: Callable[[httpx.Response], bool]) -> Callable[[], bool]:
    def probe() -> bool:
        # trust_env=False: an HTTP(S)_PROXY in the environment must not see loopback calls
        resp = httpx.get(url, timeout=1.0, trust_env=False)
        return accept(resp)
    return probe
