"""The parent process of `wardgate run`: owns the listening sockets, supervises workers.

One SO_REUSEPORT socket per worker slot is bound here and inherited by that slot's worker.
Because the supervisor keeps every socket open, a worker that exits (crash, or drain on
reload) never takes queued connections down with it: its successor accepts them.

Signals: SIGHUP reloads (validate first; keep the old generation if the file is bad or the new
workers do not become ready), SIGTERM/SIGINT drain and stop. A worker that dies is restarted,
with back-off when it keeps dying. A worker that hangs (its event loop stops beating on the
ready pipe for `timeouts.watchdog_s`) is killed, and so restarted like one that died: a wedged
worker would otherwise keep accepting its share of the port's connections and never answer.
"""

from __future__ import annotations

import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from wardgate import logs
from wardgate.config import ConfigError, GatewayConfig, load_gateway
from wardgate.config.check import print_issues
from wardgate.gateway.worker import RUN_KEY_ENV, bind_listener

READY_TIMEOUT_S = 30.0


@dataclass
class Worker:
    slot: int
    generation: int
    proc: subprocess.Popen
    ready_r: int | None  # the worker's pipe: b"1" when ready, then a b"." heartbeat a second
    ready: bool = False
    started: float = field(default_factory=time.monotonic)
    beat: float = 0.0    # monotonic time of the last byte on the pipe
    killed: bool = False


class Supervisor:
    def __init__(self, config_path: str, cfg: GatewayConfig) -> None:
        self.path = config_path
        self.cfg = cfg
        self.generation = 0
        self.sockets: list[socket.socket] = []
        self.workers: list[Worker] = []      # current generation
        self.retiring: list[Worker] = []     # draining previous generations
        self.restarts: dict[int, float] = {}  # slot -> back-off seconds
        self.flags: set[str] = set()
        # the access log's sub_hash key for every worker of this run, reloads included, unless
        # the config names one (access_log.sub_hash_key_env; the workers read that themselves)
        self.run_key = secrets.token_bytes(32)

    # -- sockets and workers -----------------------------------------------------------------
    def _bind(self, cfg: GatewayConfig) -> list[socket.socket]:
        return [bind_listener(cfg.listen) for _ in range(cfg.workers)]

    def _spawn(self, slot: int, sock: socket.socket) -> Worker:
        r, w = os.pipe()
        fd = sock.fileno()
        proc = subprocess.Popen(
            [sys.executable, "-m", "wardgate.gateway.worker", "--config", self.path,
             "--fd", str(fd), "--ready-fd", str(w)],
            pass_fds=(fd, w),
            env={**os.environ, RUN_KEY_ENV: self.run_key.hex()},
        )
        os.close(w)
        return Worker(slot, self.generation, proc, r)

    def _wait_ready(self, workers: list[Worker], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            waiting = {w.ready_r: w for w in workers if not w.ready and w.ready_r is not None}
            if not waiting:
                return True
            if any(w.proc.poll() is not None for w in workers):
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select(list(waiting), [], [], min(left, 0.2))
            for fd in readable:
                w = waiting[fd]
                w.ready = os.read(fd, 1) == b"1"
                w.beat = time.monotonic()
                if not w.ready:
                    os.close(fd)
                    w.ready_r = None
                    return False

    def _stop(self, workers: list[Worker], sig: int = signal.SIGTERM) -> None:
        for w in workers:
            if w.proc.poll() is None:
                w.proc.send_signal(sig)
            if w.ready_r is not None:
                os.close(w.ready_r)
                w.ready_r = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> bool:
        self.sockets = self._bind(self.cfg)
        self.workers = [self._spawn(i, s) for i, s in enumerate(self.sockets)]
        if not self._wait_ready(self.workers, READY_TIMEOUT_S):
            logs.event("start_failed", level="error", reason="workers did not become ready")
            self._stop(self.workers)
            self._reap_all(5.0)
            return False
        logs.event("gateway_started", listen=self.cfg.listen, workers=self.cfg.workers,
                   pid=os.getpid())
        return True

    def reload(self) -> None:
        try:
            cfg = load_gateway(self.path)
        except ConfigError as exc:
            logs.event("reload_rejected", level="error", errors=[str(i) for i in exc.issues])
            return
        sockets = self.sockets
        if cfg.listen != self.cfg.listen or cfg.workers != self.cfg.workers:
            try:
                sockets = self.sockets[: cfg.workers] if cfg.listen == self.cfg.listen else []
                sockets = sockets + self._bind_more(cfg, len(sockets))
            except OSError as exc:
                logs.event("reload_rejected", level="error", errors=[f"cannot listen: {exc}"])
                return
        self.generation += 1
        new = [self._spawn(i, s) for i, s in enumerate(sockets)]
        if not self._wait_ready(new, READY_TIMEOUT_S):
            logs.event("reload_rejected", level="error", errors=["new workers did not become ready"])
            self._stop(new, signal.SIGKILL)
            for s in sockets:
                if s not in self.sockets:
                    s.close()
            self.generation -= 1
            return
        old, self.workers = self.workers, new
        self.retiring += old
        self._stop(old)
        for s in self.sockets:
            if s not in sockets:
                s.close()
        self.sockets, self.cfg = sockets, cfg
        logs.event("reloaded", generation=self.generation, workers=cfg.workers)

    def _bind_more(self, cfg: GatewayConfig, have: int) -> list[socket.socket]:
        return [bind_listener(cfg.listen) for _ in range(cfg.workers - have)]

    def check_hung(self) -> None:
        """Read the heartbeats; kill a ready worker that has been silent for watchdog_s."""
        limit = self.cfg.timeouts.watchdog_s
        pipes = {w.ready_r: w for w in self.workers + self.retiring if w.ready_r is not None}
        if not pipes:
            return
        readable, _, _ = select.select(list(pipes), [], [], 0)
        now = time.monotonic()
        for fd in readable:
            w = pipes[fd]
            try:
                got = os.read(fd, 4096)
            except OSError:
                got = b""
            if got:
                if not w.ready:  # a restarted worker (nobody waits for it): "1" first
                    w.ready = got[:1] == b"1"
                w.beat = now
            else:  # the worker closed its end: it is exiting; poll() will tell
                os.close(fd)
                w.ready_r = None
        if not limit:
            return
        for w in self.workers:
            if w.ready and not w.killed and now - w.beat > limit and w.proc.poll() is None:
                logs.event("worker_hung", level="error", slot=w.slot, pid=w.proc.pid,
                           silent_s=round(now - w.beat, 1))
                w.killed = True
                w.proc.kill()

    def check_children(self) -> None:
        self.check_hung()
        for w in list(self.retiring):
            if w.proc.poll() is not None:
                if w.ready_r is not None:
                    os.close(w.ready_r)
                    w.ready_r = None
                self.retiring.remove(w)
        for i, w in enumerate(self.workers):
            code = w.proc.poll()
            if code is None:
                continue
            uptime = time.monotonic() - w.started
            backoff = self.restarts.get(w.slot, 0.0)
            backoff = 0.0 if uptime > 30 else min(10.0, max(0.25, backoff * 2))
            self.restarts[w.slot] = backoff
            logs.event("worker_exited", level="error", slot=w.slot, code=code,
                       restart_in_s=backoff)
            if w.ready_r is not None:
                os.close(w.ready_r)
            if backoff:
                time.sleep(backoff)
            self.workers[i] = self._spawn(w.slot, self.sockets[w.slot])

    def shutdown(self) -> None:
        everyone = self.workers + self.retiring
        self._stop(everyone)
        self._reap_all(self.cfg.timeouts.drain_s + 5.0)
        for s in self.sockets:
            s.close()
        logs.event("gateway_stopped")

    def _reap_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for w in self.workers + self.retiring:
            left = max(0.0, deadline - time.monotonic())
            try:
                w.proc.wait(left)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()

    def run(self) -> int:
        def flag(name: str):  # noqa: ANN202
            return lambda *_: self.flags.add(name)

        signal.signal(signal.SIGHUP, flag("reload"))
        signal.signal(signal.SIGTERM, flag("stop"))
        signal.signal(signal.SIGINT, flag("stop"))
        if not self.start():
            return 1
        while "stop" not in self.flags:
            if "reload" in self.flags:
                self.flags.discard("reload")
                self.reload()
            self.check_children()
            time.sleep(0.1)
        self.shutdown()
        return 0


def run_gateway(config_path: str) -> int:
    try:
        cfg = load_gateway(config_path)
    except ConfigError as exc:
        print_issues(exc, "refusing to start: configuration is invalid")
        return 2
    try:
        sup = Supervisor(config_path, cfg)
        return sup.run()
    except OSError as exc:
        print(f"wardgate: cannot listen on {cfg.listen}: {exc.strerror}", file=sys.stderr)
        return 1
