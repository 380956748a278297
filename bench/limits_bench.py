"""What rate limiting costs: one wardgate, side by side in one run, on routes that differ only
by their limits (never reached), against the same nginx upstream (`make bench`).

Routes: /plain (no limit), /local (a local limit keyed by address), /global (a global limit on
a real local redis-server), /jwt (RS256 bearer, one token: the verified-token cache),
/jwt-local (the same with a local limit keyed by `sub`) and /control (plain again, matched
last; `--routes` picks, all but control by default). Interleaved rounds of `wrk -t1 -c64`;
prints each route's req/s and p99 against its base (plain or jwt), wardgate's CPU time per
request and Redis's own CPU per request on the global route.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import targets
import tokens
import wrkrun
import yaml
from procs import ProcessSet, free_port, pinned, wait_for_port

BENCH = Path(__file__).resolve().parent
ROUTES = ("plain", "local", "global", "jwt", "jwt-local", "control")
HUGE = "10000000/s"  # never reached: the cost of deciding, not of refusing


def start_redis(procs: ProcessSet, workdir: Path) -> tuple[int, int]:
    port = free_port()
    m = procs.start("redis", pinned(targets.LOAD_CPU, [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(workdir)]))
    wait_for_port(port, m)
    return port, m.pid


def start_wardgate(procs: ProcessSet, workdir: Path, upstream: int, redis: int,
                   keys: tokens.KeyMaterial) -> int:
    port = free_port()
    up = "up"

    def route(name: str, auth: object, limits: list[dict[str, object]]) -> dict[str, object]:
        r: dict[str, object] = {"name": name, "match": {"path_prefix": f"/{name}"},
                                "upstream": up, "auth": auth}
        if limits:
            r["rate_limits"] = limits
        return r

    jwt_auth = {"providers": ["bench"], "require": {"scopes": [tokens.SCOPE]}}
    config = {
        "listen": f"127.0.0.1:{port}", "workers": 1, "timeouts": {"drain_s": 2},
        "access_log": {"enabled": False},
        "state": {"redis_url": f"redis://127.0.0.1:{redis}/0"},
        "providers": [{"name": "bench", "issuer": tokens.ISSUER, "audiences": [tokens.AUDIENCE],
                       "algorithms": ["RS256"], "jwks_file": str(keys.jwks_path)}],
        "upstreams": [{"name": up, "targets": [f"http://127.0.0.1:{upstream}"]}],
        "routes": [
            route("plain", "none", []),
            route("local", "none", [{"name": "l", "key": "ip", "rate": HUGE}]),
            route("global", "none", [{"name": "g", "key": "ip", "rate": HUGE, "scope": "global"}]),
            route("jwt", jwt_auth, []),
            route("jwt-local", jwt_auth, [{"name": "u", "key": "sub", "rate": HUGE}]),
            # plain again, matched last: separates the cost of a limit from that of route order
            route("control", "none", []),
        ],
    }
    conf = workdir / "wardgate-limits.yaml"
    conf.write_text(yaml.safe_dump(config, sort_keys=False))
    m = procs.start("wardgate", pinned(targets.PROXY_CPU, [str(targets.WARDGATE), "run", "--config",
                                                           str(conf)]))
    wait_for_port(port, m, timeout=30)
    return port


def tree_cpu(pid: int) -> float:
    total = 0.0
    root = psutil.Process(pid)
    for p in [root, *root.children(recursive=True)]:
        t = p.cpu_times()
        total += t.user + t.system
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--routes", default=",".join(ROUTES[:-1]), help="from " + ",".join(ROUTES))
    args = ap.parse_args(argv)
    routes = tuple(r for r in args.routes.split(",") if r)
    for r in routes:
        if r not in ROUTES:
            ap.error(f"unknown route {r!r}")
    for tool in ("wrk", "nginx", "redis-server"):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            print(f"{tool} not installed: make bench installs it", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="wardgate-limits-bench-"))
    procs = ProcessSet(work)
    try:
        keys = tokens.load_or_create_key(BENCH / "results" / "cache")
        token = keys.mint("bench-user", int(time.time()), 3600)
        upstream = targets.start_upstream(procs, work)
        redis_port, redis_pid = start_redis(procs, work)
        port = start_wardgate(procs, work, upstream.port, redis_port, keys)
        wg_pid = procs.procs[-1].pid
        lua = wrkrun.script(work, "report")
        results: dict[str, list[tuple[float, int, float, float]]] = {r: [] for r in routes}
        for name in routes:  # warm-up, and a check that each route proxies
            headers = {"Authorization": f"Bearer {token}"} if name.startswith("jwt") else None
            w = wrkrun.run(f"http://127.0.0.1:{port}/{name}", 1, args.connections, lua, headers)
            if w.errors or not w.requests:
                raise RuntimeError(f"/{name}: {w.errors} errors in warm-up")
        for rnd in range(args.rounds):
            order = routes if rnd % 2 == 0 else tuple(reversed(routes))
            for name in order:
                headers = {"Authorization": f"Bearer {token}"} if name.startswith("jwt") else None
                c0, r0 = tree_cpu(wg_pid), tree_cpu(redis_pid)
                w = wrkrun.run(f"http://127.0.0.1:{port}/{name}", args.duration,
                               args.connections, lua, headers)
                cpu_us = (tree_cpu(wg_pid) - c0) / max(w.requests, 1) * 1e6
                redis_us = (tree_cpu(redis_pid) - r0) / max(w.requests, 1) * 1e6
                results[name].append((w.rps, w.p99_us, cpu_us, redis_us))
                if w.errors:
                    print(f"warning: /{name} round {rnd}: {w.errors} errors")
        med = {n: tuple(statistics.median(x[i] for x in v) for i in range(4))
               for n, v in results.items()}
        print(f"\nrate limits, {args.rounds} interleaved rounds of {args.duration:.0f} s, "
              f"wrk -t1 -c{args.connections}, medians\n")
        print("| route | req/s | vs base | p99 us | p99 vs base | wardgate CPU us/req | "
              "redis CPU us/req |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name in routes:
            base = "jwt" if name.startswith("jwt") else "plain"  # control: against plain
            rps, p99, cpu, rcpu = med[name]
            b = med.get(base, med[name])
            print(f"| {name} | {rps:,.0f} | {rps / b[0]:.2f}x | {p99:,.0f} | {p99 / b[1]:.2f}x | "
                  f"{cpu:.1f} | {rcpu:.1f} |")
        return 0
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
