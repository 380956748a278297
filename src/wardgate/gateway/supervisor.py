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

import hashlib
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from wardgate import logs
from wardgate.config import ConfigError, GatewayConfig, load_gateway
from wardgate.config.check import print_issues
from wardgate.gateway.worker import METRICS_DIR_ENV, RUN_KEY_ENV, bind_listener
from wardgate.gateway.worker import metrics_file_name as _metrics_name

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
        # admin listener state (wardgate.admin.view.AdminView is implemented below)
        self.metrics_dir: str | None = None
        self.config_hash = _file_hash(config_path)
        self.reload_seq = 0       # reloads asked for (SIGHUP or POST /admin/reload)
        self.reload_done = 0      # reloads finished
        self.reload_results: dict[int, dict[str, Any]] = {}
        self.reload_counts = {"ok": 0, "rejected": 0}

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
            env=self._worker_env(),
        )
        os.close(w)
        return Worker(slot, self.generation, proc, r)

    def _worker_env(self) -> dict[str, str]:
        from wardgate.dpop.nonce import NONCE_KEY_ENV, run_key

        # one DPoP nonce key per run: every worker accepts the nonces every other hands out
        env = {**os.environ, RUN_KEY_ENV: self.run_key.hex(), NONCE_KEY_ENV: run_key(self.run_key)}
        if self.metrics_dir is not None:
            env[METRICS_DIR_ENV] = self.metrics_dir
        return env

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

    # -- the admin view (read from the admin listener's thread) -------------------------------
    def config(self) -> GatewayConfig:
        return self.cfg

    def token(self) -> bytes | None:
        try:
            return self.cfg.admin.token()
        except OSError:
            return None  # an unreadable token file refuses everyone, like no token

    def _publishing_workers(self) -> list[str]:
        """The metrics-file names of the workers alive now (retiring ones too)."""
        return [_metrics_name(w.proc.pid) for w in list(self.workers) + list(self.retiring)
                if w.proc.poll() is None]

    def metrics(self) -> Any:
        from wardgate.observe.aggregate import collect
        from wardgate.observe.registry import request_publish

        if self.metrics_dir is None:
            from wardgate.observe.aggregate import Aggregate
            return Aggregate()
        live = self._publishing_workers()
        request_publish(self.metrics_dir, live)  # every request answered so far is counted
        return collect(self.metrics_dir, live)

    def keysets(self) -> dict[str, list[dict[str, Any]]]:
        from wardgate.observe import keysets

        if self.metrics_dir is None:
            return {}
        live = {_metrics_name(w.proc.pid) for w in list(self.workers) if w.proc.poll() is None}
        return keysets.collect(self.metrics_dir, live)

    def upstream_states(self) -> dict[str, list[dict[str, Any]]]:
        from wardgate.observe import upstreams

        if self.metrics_dir is None:
            return {}
        live = {_metrics_name(w.proc.pid) for w in list(self.workers) if w.proc.poll() is None}
        return upstreams.collect(self.metrics_dir, live)

    def denials(self, limit: int) -> dict[str, Any]:
        from wardgate.observe import denials
        from wardgate.observe.registry import request_publish

        if self.metrics_dir is None:
            return {"denials": [], "top_clients": []}
        live = self._publishing_workers()
        request_publish(self.metrics_dir, live)  # each worker writes its buffered refusals
        return denials.collect(self.metrics_dir, limit)

    def detections(self, limit: int) -> list[dict[str, Any]]:
        from wardgate.observe import detections

        if self.metrics_dir is None:
            return []
        return detections.collect(self.metrics_dir, limit)

    def process_lines(self, openmetrics: bool) -> list[str]:
        reloads = "wardgate_config_reloads" if openmetrics else "wardgate_config_reloads_total"
        return [
            f"# HELP {reloads} Configuration reloads by result",
            f"# TYPE {reloads} counter",
            *(f'wardgate_config_reloads_total{{result="{k}"}} {v}'
              for k, v in sorted(self.reload_counts.items())),
            "# HELP wardgate_config_info The running configuration file's SHA-256",
            "# TYPE wardgate_config_info gauge",
            f'wardgate_config_info{{sha256="{self.config_hash}"}} 1',
            "# HELP wardgate_config_generation Reload generation serving now",
            "# TYPE wardgate_config_generation gauge",
            f"wardgate_config_generation {self.generation}",
            "# HELP wardgate_workers Worker processes of the serving generation",
            "# TYPE wardgate_workers gauge",
            f"wardgate_workers {len(self.workers)}",
        ]

    def workers_info(self) -> list[dict[str, Any]]:
        return [{"slot": w.slot, "pid": w.proc.pid, "generation": w.generation,
                 "ready": w.ready, "alive": w.proc.poll() is None,
                 "uptime_s": round(time.monotonic() - w.started, 1)}
                for w in list(self.workers)]

    def request_reload(self) -> int:
        self.reload_seq += 1
        self.flags.add("reload")
        return self.reload_seq

    def reload_result(self, seq: int) -> dict[str, Any] | None:
        if self.reload_done < seq:
            return None
        return self.reload_results.get(self.reload_done)

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
        """Reload, and record the result for POST /admin/reload and the metrics."""
        errors = self._reload()
        self.reload_done = self.reload_seq
        result = "ok" if errors is None else "rejected"
        self.reload_counts[result] += 1
        self.reload_results[self.reload_done] = {
            "seq": self.reload_done, "result": result, "errors": errors or [],
            "generation": self.generation}
        for old in [k for k in self.reload_results if k < self.reload_done - 16]:
            del self.reload_results[old]

    def _reload(self) -> list[str] | None:
        """None when the new generation serves, else why the old one stays."""
        try:
            cfg = load_gateway(self.path)
        except ConfigError as exc:
            logs.event("reload_rejected", level="error", errors=[str(i) for i in exc.issues])
            return [str(i) for i in exc.issues]
        sockets = self.sockets
        if cfg.listen != self.cfg.listen or cfg.workers != self.cfg.workers:
            try:
                sockets = self.sockets[: cfg.workers] if cfg.listen == self.cfg.listen else []
                sockets = sockets + self._bind_more(cfg, len(sockets))
            except OSError as exc:
                logs.event("reload_rejected", level="error", errors=[f"cannot listen: {exc}"])
                return [f"cannot listen: {exc}"]
        self.generation += 1
        new = [self._spawn(i, s) for i, s in enumerate(sockets)]
        if not self._wait_ready(new, READY_TIMEOUT_S):
            logs.event("reload_rejected", level="error", errors=["new workers did not become ready"])
            self._stop(new, signal.SIGKILL)
            for s in sockets:
                if s not in self.sockets:
                    s.close()
            self.generation -= 1
            return ["new workers did not become ready"]
        old, self.workers = self.workers, new
        self.retiring += old
        self._stop(old)
        for s in self.sockets:
            if s not in sockets:
                s.close()
        self.sockets, self.cfg = sockets, cfg
        self.config_hash = _file_hash(self.path)
        logs.event("reloaded", generation=self.generation, workers=cfg.workers)
        return None

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
        # Close our copies of the listening sockets first: once each worker closes its own at
        # the start of its drain, the port refuses new connections. Held open here, the kernel
        # would keep completing handshakes for the whole drain, and those connections (request
        # sent, nobody accepting) were reset at the end: accepted requests never answered.
        for s in self.sockets:
            s.close()
        everyone = self.workers + self.retiring
        self._stop(everyone)
        self._reap_all(self.cfg.timeouts.drain_s + 5.0)
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

        def hup(*_: object) -> None:
            self.reload_seq += 1
            self.flags.add("reload")

        signal.signal(signal.SIGHUP, hup)
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


def _file_hash(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return ""


class _View:
    """The supervisor as the admin API's AdminView (`workers` is a list attribute there)."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.config, self.token, self.metrics = sup.config, sup.token, sup.metrics
        self.process_lines, self.workers = sup.process_lines, sup.workers_info
        self.request_reload, self.reload_result = sup.request_reload, sup.reload_result
        self.denials, self.keysets = sup.denials, sup.keysets
        self.detections = sup.detections
        self.upstream_states = sup.upstream_states


def run_gateway(config_path: str) -> int:
    try:
        cfg = load_gateway(config_path)
    except ConfigError as exc:
        print_issues(exc, "refusing to start: configuration is invalid")
        return 2
    sup = Supervisor(config_path, cfg)
    admin = None
    if cfg.admin_enabled:
        from wardgate.admin.server import AdminServer  # the framework stays out of workers

        # mkdtemp: a fresh 0700 directory; tmpfs keeps the slot pages off the disk
        shm = "/dev/shm"  # noqa: S108
        base = shm if os.path.isdir(shm) else None
        sup.metrics_dir = tempfile.mkdtemp(prefix="wardgate-metrics-", dir=base)
        if sup.token() is None:
            logs.event("admin_token_missing", level="warning",
                       detail="no admin token configured: /admin/* and the dashboard refuse "
                              "every request")
        admin = AdminServer(_View(sup), cfg.admin.listen)  # type: ignore[arg-type]
        if not admin.start():
            print(f"wardgate: cannot listen on {cfg.admin.listen} (admin)", file=sys.stderr)
            shutil.rmtree(sup.metrics_dir, ignore_errors=True)
            return 1
        logs.event("admin_listening", listen=cfg.admin.listen)
    try:
        return sup.run()
    except OSError as exc:
        print(f"wardgate: cannot listen on {cfg.listen}: {exc.strerror}", file=sys.stderr)
        return 1
    finally:
        if admin is not None:
            admin.stop()
        if sup.metrics_dir is not None:
            shutil.rmtree(sup.metrics_dir, ignore_errors=True)
