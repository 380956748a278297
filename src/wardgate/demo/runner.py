"""`wardgate demo`: start the issuer, the example services and the gateway; stop them on Ctrl-C.

Order: check every port (nothing starts if one is taken), write and validate the configs,
generate keys and users, then issuer -> services -> gateway, each waited for before the next
(the orders service needs the issuer's keys, the gateway its key set). SIGINT/SIGTERM stop
the children in reverse order, by process group, and wait for each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import httpx

from wardgate.config.loader import ConfigError
from wardgate.demo import guide
from wardgate.demo.bootstrap import bootstrap
from wardgate.demo.settings import (
    ADMIN_TOKEN_ENV,
    DPOP_KEY_FILE,
    REVOCATION_TOKEN_ENV,
    DemoFiles,
    Ports,
    admin_token,
    dpop_client_secret,
    examples_dir,
    port_answers,
    prepare,
    revocation_token,
    taken_ports,
)
from wardgate.demo.stack import Child, StartError, http_probe, python_argv, wait_until

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class _Stop:
    """Set by SIGINT/SIGTERM; the main loop and the readiness waits look at it."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.signum = signum

    def requested(self) -> bool:
        return self.signum is not None


def _children(files: DemoFiles, ports: Ports) -> dict[str, Child]:
    logs = files.logs
    gw_cfg = str(files.gateway_yaml)
    return {
        "issuer": Child("issuer", python_argv("-m", "wardgate", "issuer", "--config",
                                              str(files.issuer_yaml), "--log-level", "info"),
                        logs / "issuer.log"),
        "orders": Child("orders", python_argv("-m", "wardgate.demo.services", "orders",
                                              "--config", gw_cfg, "--port", str(ports.orders)),
                        logs / "orders.log"),
        "reports": Child("reports", python_argv("-m", "wardgate.demo.services", "reports",
                                                "--config", gw_cfg, "--port", str(ports.reports)),
                         logs / "reports.log"),
        "gateway": Child("gateway", python_argv("-m", "wardgate", "run", "--config", gw_cfg),
                         logs / "gateway.log"),
    }


def _start_all(children: dict[str, Child], ports: Ports, stop: _Stop,
               env: dict[str, str]) -> None:
    def has_keys(r: httpx.Response) -> bool:
        try:
            return r.status_code == 200 and bool(r.json().get("keys"))
        except ValueError:  # not JSON yet (or not our issuer): keep waiting
            return False

    probes = {
        "issuer": (f"{ports.url('issuer')}/.well-known/jwks.json", has_keys,
                   "its JWKS has no key yet"),
        "orders": (f"{ports.url('orders')}/healthz", lambda r: r.status_code == 200,
                   "/healthz is not 200 (are the issuer's keys loaded?)"),
        "reports": (f"{ports.url('reports')}/healthz", lambda r: r.status_code == 200,
                    "/healthz is not 200"),
        # A 401 with a Bearer challenge means a worker answers and /orders' auth is compiled.
        "gateway": (f"{ports.url('gateway')}/orders",
                    lambda r: r.status_code == 401 and "bearer" in
                    r.headers.get("www-authenticate", "").lower(),
                    "GET /orders without a token does not answer 401"),
    }
    for name in ("issuer", "orders", "reports", "gateway"):
        if stop.requested():
            raise KeyboardInterrupt
        child = children[name]
        print(f"  starting {name} ...", flush=True)
        child.start(env)
        url, accept, what = probes[name]
        wait_until(child, http_probe(url, accept), timeout=READY_TIMEOUT_S,
                   stop_requested=stop.requested, what=what)


def _stop_all(children: dict[str, Child], gateway_drain_s: float) -> None:
    # Front to back, so no request reaches a part that is already gone.
    for name in ("gateway", "orders", "reports", "issuer"):
        # the gateway may take its configured drain time before its workers let go
        timeout = gateway_drain_s + STOP_TIMEOUT_S if name == "gateway" else STOP_TIMEOUT_S
        children[name].stop(timeout)


def _watch(children: dict[str, Child], stop: _Stop) -> int:
    while not stop.requested():
        for child in children.values():
            code = child.exited()
            if code is not None:
                print(f"\n{child.name} exited unexpectedly (code {code}); stopping the demo. "
                      f"Log: {child.log_path}\n{child.log_tail()}", file=sys.stderr)
                return 1
        time.sleep(0.2)
    return 0


def _cli_command() -> str:
    """`wardgate` when it is on PATH, else this interpreter's entry point (`make run` runs
    .venv/bin/wardgate without activating the venv)."""
    if shutil.which("wardgate"):
        return "wardgate"
    script = Path(sys.executable).parent / "wardgate"
    if script.is_file():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m wardgate"


def run_demo(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    try:
        ports = Ports.resolve({f: getattr(args, f"{f}_port") for f in
                               ("issuer", "gateway", "admin", "orders", "reports")}, env)
        examples = Path(args.examples) if args.examples else examples_dir()
    except (ValueError, FileNotFoundError) as exc:
        print(f"wardgate demo: {exc}", file=sys.stderr)
        return 2
    taken = taken_ports(ports)
    if taken:
        for name, port, why in taken:
            print(f"wardgate demo: port {port} ({name}) on 127.0.0.1 is not available: {why}",
                  file=sys.stderr)
        print("wardgate demo: nothing was started. Stop whatever uses the port, or move the "
              "demo with --<part>-port / WARDGATE_DEMO_<PART>_PORT.", file=sys.stderr)
        return 1
    state = Path(args.dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    # the revocation feed's token: the gateway polls the issuer with it (examples/*.yaml)
    feed_token, _ = revocation_token(state)
    env = {**env, REVOCATION_TOKEN_ENV: feed_token}
    try:
        files = prepare(state, examples, ports)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 2
    stop = _Stop()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    children = _children(files, ports)
    token, token_path = admin_token(state)
    # Children log what they do; unbuffered so the logs are current when a start fails.
    # The gateway reads its admin token from the variable examples/gateway.yaml names.
    child_env = {**env, "PYTHONUNBUFFERED": "1", ADMIN_TOKEN_ENV: token}
    try:
        print(f"wardgate demo: state in {state}", flush=True)
        dpop_secret, dpop_secret_path = dpop_client_secret(state)
        boot = asyncio.run(bootstrap(files.issuer, env, dpop_secret))
        _start_all(children, ports, stop, child_env)
        print(guide.render(ports, boot.password, generated=boot.password_generated,
                           state=str(state), logs=str(files.logs), new_key=boot.new_key,
                           admin_up=port_answers(ports.admin),
                           admin=guide.AdminAccess(token, str(token_path),
                                                   str(files.gateway_yaml), _cli_command()),
                           dpop=guide.DpopDemo(_cli_command(), str(dpop_secret_path),
                                               str(state / DPOP_KEY_FILE))),
              flush=True)
        code = _watch(children, stop)
    except StartError as exc:
        print(f"wardgate demo: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 0
    finally:
        print("\nwardgate demo: stopping ...", flush=True)
        _stop_all(children, files.gateway.timeouts.drain_s)
        for s, handler in previous.items():
            signal.signal(s, handler)
    print("wardgate demo: stopped.", flush=True)
    return code
