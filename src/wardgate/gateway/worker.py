"""One gateway worker process: an event loop serving the listening socket it inherited.

Started by the supervisor as `python -m wardgate.gateway.worker`. It signals readiness on a
pipe once keys are loaded and the socket is being served, and drains on SIGTERM/SIGINT:
stop accepting, let in-flight requests finish (keep-alive turned off), then exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import os
import resource
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any

import uvloop

from wardgate import logs
from wardgate.auth.identity import set_sub_hash_key
from wardgate.config import ConfigError, GatewayConfig, load_gateway
from wardgate.config.common import parse_hostport
from wardgate.gateway import output
from wardgate.gateway.accesslog import AccessLog
from wardgate.gateway.headers import RequestIds
from wardgate.gateway.overload import ConnectionCap
from wardgate.gateway.protocol import ClientProtocol
from wardgate.gateway.request import Request
from wardgate.gateway.runtime import Runtime
from wardgate.observe.denials import DenialRing
from wardgate.observe.detections import DetectionRing
from wardgate.observe.registry import ANSWER_INTERVAL_S

SWEEP_INTERVAL_S = 0.25
HEARTBEAT_S = 1.0  # the event loop checks in with the supervisor's watchdog this often


class WorkerState:
    """Everything one worker's connections share; owned by `serve`."""

    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop, accesslog: AccessLog) -> None:
        self.runtime = runtime
        self.loop = loop
        self.connections: set[ClientProtocol] = set()
        self.ids = RequestIds()
        self.accesslog = accesslog
        self.metrics = runtime.metrics
        #: recent refusals for the admin API (observe/denials.py), kept with the metrics
        self.denials: DenialRing | None = None
        #: the listener's connection cap (gateway/overload.py), set by `serve`
        self.cap: ConnectionCap | None = None
        #: whether a finished request has anything to record (access log line or metrics)
        self.tracer = runtime.tracer if runtime.exporter is not None else None
        self.recording = accesslog.enabled or runtime.metrics is not None \
            or self.tracer is not None or runtime.detection is not None
        observe = runtime.detection.buf.append if runtime.detection is not None else None
        counting = self.metrics is not None and self.metrics.values is not None
        # metrics alone: the whole of `log` is one closure over the slots, with the
        # detector's append (it builds the detector's item inline; `_observed` calls
        # wardgate.detect.buffered)
        fused = counting and not accesslog.enabled and self.tracer is None
        #: the metrics' share of `log` (observe/http.py `finisher`)
        self._count: Callable[..., None] | None = self.metrics.finisher(  # type: ignore[union-attr]
            loop.time, self._maybe_denied, observe if fused else None) if counting else None
        if fused:
            self.log = self._count  # type: ignore[method-assign,assignment]
        elif observe is not None:
            nothing_else = not accesslog.enabled and runtime.metrics is None \
                and self.tracer is None
            self.log = _observed(None if nothing_else else self.log,  # type: ignore[method-assign]
                                 observe)

    def log(self, req: Request, status: int, bytes_in: int, bytes_out: int, target: str,
            error: str | None, retried: str | None = None) -> None:
        """The one place a request ends: its access log line, its metrics and its span.
        `retried`: the error code of a first try that failed and was retried."""
        seconds = self.loop.time() - req.start if req.start else 0.0
        if self.tracer is not None:
            self.tracer.finish(req, status, seconds)
        if self.accesslog.enabled:
            self.accesslog.record(req, status, bytes_in, bytes_out, target, error, seconds * 1000,
                                  retried)
        if self._count is not None:
            # its own clock read gives the same `seconds`: uvloop's time is the iteration's
            self._count(req, status, bytes_in, bytes_out, target, error, retried)

    def _maybe_denied(self, req: Request, status: int) -> None:
        if self.denials is not None:
            self._denied(req, status)

    def _denied(self, req: Request, status: int) -> None:
        outcome = req.auth_outcome
        if outcome in _NOT_REFUSALS:
            if req.rate_limit is None:
                return  # a malformed request or an upstream failure: not a refusal
            outcome = "rate_limited:" + req.rate_limit
        ident = req.identity
        self.denials.add(time.time(), status,  # type: ignore[union-attr]
                         req.route.name if req.route is not None else "-", outcome,
                         req.client_ip or "-", getattr(ident, "sub_hash", None))


_NOT_REFUSALS = frozenset(("-", "ok", "anonymous"))


def _observed(log: Callable[..., None] | None,
              record: Callable[[tuple[Any, ...]], None]) -> Callable[..., None]:
    """`log` (None: nothing else records), and then the finished request handed to the
    detector (wardgate.detect) when its route is watched: one append of its fields
    (`buffered`); the rest happens in the detector's tick."""
    from wardgate.detect.adapter import buffered

    if log is None:
        def observed_only(req: Request, status: int, bytes_in: int, bytes_out: int,
                          *rest: object) -> None:
            route = req.route
            if route is not None and route.observed:
                record(buffered(req, status, bytes_out))
        return observed_only

    def observed(req: Request, status: int, bytes_in: int, bytes_out: int,
                 *rest: object) -> None:
        log(req, status, bytes_in, bytes_out, *rest)
        route = req.route
        if route is not None and route.observed:
            record(buffered(req, status, bytes_out))
    return observed


def sweep(state: WorkerState, now: float) -> None:
    """Enforce every connection's deadlines. A connection whose check fails is aborted and
    logged, never allowed to end the sweep: the others' timeouts must still fire (and the
    sweeper's heartbeat go on)."""
    for conn in list(state.connections):
        try:
            conn.check_timeouts(now)
        except Exception as exc:  # noqa: BLE001 - a bug in one connection, not the worker's end
            logs.event("connection_failed", level="error", where="check_timeouts",
                       error=f"{type(exc).__name__}: {exc}")
            state.connections.discard(conn)
            with contextlib.suppress(Exception):
                conn.transport.abort()


def server_ssl_context(cfg: GatewayConfig) -> ssl.SSLContext | None:
    if cfg.tls is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cfg.tls.cert, cfg.tls.key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def bind_listener(listen: str) -> socket.socket:
    """A listening socket with SO_REUSEPORT, so several workers (and generations) share a port."""
    host, port = parse_hostport(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _raise_fd_limit(want: int) -> None:
    """Lift the soft open-files limit towards what the connection cap needs (up to the hard
    limit), as nginx's worker_rlimit_nofile does; running out of descriptors fails accepts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: never outlive the supervisor
    except OSError:
        pass


async def serve(cfg: GatewayConfig, sock: socket.socket, ready_fd: int | None = None) -> int:
    loop = asyncio.get_running_loop()
    output.BATCH.bind(loop)
    al = cfg.access_log
    accesslog = AccessLog(al.path, al.include_query, al.enabled)
    runtime = Runtime(cfg)
    if runtime.metrics is not None:
        # the supervisor's metrics directory (absent when the worker runs alone: anonymous)
        runtime.metrics.registry.freeze(os.environ.get(METRICS_DIR_ENV), metrics_file_name())
        runtime.metrics.bind()
    await runtime.start()
    if runtime.metrics is not None:
        runtime.metrics.sample(0, loop.time())  # gauges (and key sets) true before the sweeps
    state = WorkerState(runtime, loop, accesslog)
    if runtime.metrics is not None:
        state.denials = DenialRing(os.environ.get(METRICS_DIR_ENV), metrics_file_name())
    if runtime.detection is not None:
        runtime.detection.ring = DetectionRing(os.environ.get(METRICS_DIR_ENV),
                                               metrics_file_name())
    ctx = server_ssl_context(cfg)
    scheme = "https" if ctx else "http"
    _raise_fd_limit(2 * cfg.limits.max_connections + 256)  # a client and an upstream socket each
    cap = ConnectionCap(state.connections, cfg.limits.max_connections,
                        lambda: ClientProtocol(state, scheme), state.ids, runtime.server)
    state.cap = cap
    server = await loop.create_server(
        cap, sock=sock, ssl=ctx,
        ssl_handshake_timeout=cfg.tls.handshake_timeout_s if cfg.tls else None,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # reload is the supervisor's job
    parent = os.getppid()
    beat_at = 0.0

    async def sweeper() -> None:
        nonlocal beat_at
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            now = loop.time()
            sweep(state, now)
            runtime.sweep(now)
            accesslog.flush()
            if state.denials is not None:
                state.denials.flush()
            if runtime.metrics is not None:
                runtime.metrics.sample(len(state.connections), now, cap.refused)
            if os.getppid() != parent:
                stop.set()
            if ready_fd is not None and now >= beat_at:
                # Written from the loop itself: a loop stuck in a callback stops beating, and
                # the supervisor's watchdog restarts the worker (see supervisor.check_hung).
                beat_at = now + HEARTBEAT_S
                try:
                    os.write(ready_fd, b".")
                except BlockingIOError:
                    pass  # the supervisor is behind on reading: it knows we are alive
                except OSError:
                    stop.set()  # the supervisor is gone

    sweep_task = loop.create_task(sweeper())
    answer_timer: asyncio.TimerHandle | None = None
    if runtime.metrics is not None and runtime.metrics.registry.shared is not None:
        registry = runtime.metrics.registry
        flush_denials = state.denials.flush if state.denials is not None else None

        def answer_scrapes() -> None:
            # a scrape or the admin asked for fresh numbers (observe/registry.py): a cheap
            # look, 50 times a second, instead of publishing on the request path
            nonlocal answer_timer
            registry.answer(flush_denials)
            answer_timer = loop.call_later(ANSWER_INTERVAL_S, answer_scrapes)

        answer_timer = loop.call_later(ANSWER_INTERVAL_S, answer_scrapes)
    # Start-up objects (config models, modules, key sets) live as long as the worker: move them
    # out of the collector's reach so a full collection never walks them again (p99 latency).
    gc.collect()
    gc.freeze()
    logs.event("worker_ready", listen=cfg.listen, tls=bool(ctx))
    if ready_fd is not None:
        os.write(ready_fd, b"1")  # ready; the same pipe then carries the heartbeats
        os.set_blocking(ready_fd, False)
    await stop.wait()

    # Drain: stop accepting (the supervisor still holds the socket, so queued connections
    # stay in the kernel for the next generation), finish in-flight, then go.
    server.close()
    for conn in list(state.connections):
        conn.drain()
    deadline = loop.time() + cfg.timeouts.drain_s
    while state.connections and loop.time() < deadline:
        await asyncio.sleep(0.05)
        for conn in list(state.connections):
            conn.drain()
    left = len(state.connections)
    for conn in list(state.connections):
        conn.transport.abort()
    sweep_task.cancel()
    if answer_timer is not None:
        answer_timer.cancel()
    await runtime.stop()
    accesslog.close()
    if runtime.metrics is not None:
        runtime.metrics.sample(0, loop.time(), cap.refused)  # the final CPU time; connections 0
        runtime.metrics.registry.close()
        if state.denials is not None:
            state.denials.close()
    if runtime.detection is not None and runtime.detection.ring is not None:
        runtime.detection.ring.close()
    if ready_fd is not None:
        os.close(ready_fd)
    logs.event("worker_stopped", aborted_connections=left)
    return 0


#: the supervisor's per-run sub_hash key (hex), passed to its workers in the environment
RUN_KEY_ENV = "WARDGATE_RUN_SUB_HASH_KEY"
#: the directory where each worker maps its metric slots (observe/registry.py)
METRICS_DIR_ENV = "WARDGATE_METRICS_DIR"


def metrics_file_name(pid: int | None = None) -> str:
    """One worker's metrics files, by pid (the supervisor knows which pids are alive)."""
    return f"worker-{pid if pid is not None else os.getpid()}"


def _sub_hash_key(cfg: GatewayConfig) -> None:
    run_key = os.environ.pop(RUN_KEY_ENV, None)
    key = cfg.access_log.sub_hash_key() or (bytes.fromhex(run_key) if run_key else None)
    if key is not None:
        set_sub_hash_key(key)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="wardgate-worker")
    ap.add_argument("--config", required=True)
    ap.add_argument("--fd", type=int, required=True, help="inherited listening socket")
    ap.add_argument("--ready-fd", type=int, default=None)
    args = ap.parse_args(argv)
    _die_with_parent()
    try:
        cfg = load_gateway(args.config)
    except ConfigError as exc:
        logs.event("worker_config_invalid", level="error", errors=[str(i) for i in exc.issues])
        return 2
    _sub_hash_key(cfg)
    sock = socket.socket(fileno=args.fd)
    try:
        return uvloop.run(serve(cfg, sock, args.ready_fd))
    except Exception as exc:  # start-up failure (keys, TLS files): report, let the supervisor decide
        logs.event("worker_failed", level="error", error=f"{type(exc).__name__}: {exc}")
        return 3


if __name__ == "__main__":
    sys.exit(main())
