"""What metrics cost on the request path: two wardgates side by side in one run, identical but
for the `admin` section (which turns the metric slots on), against the same nginx upstream
(`make bench`).

Each gateway has /plain (no auth) and /jwt (RS256 bearer, one token: the verified-token
cache). Interleaved rounds of `wrk -t1 -c64` alternate between the gateways and routes; prints
each route's req/s and p99 with metrics against without, and CPU time per request. A scrape of
/metrics runs between rounds, as Prometheus would, to show the counters add up.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import targets
import tokens
import wrkrun
import yaml
from limits_bench import tree_cpu
from procs import ProcessSet, free_port, pinned, wait_for_port

BENCH = Path(__file__).resolve().parent
ROUTES = ("plain", "jwt")


def start_wardgate(procs: ProcessSet, workdir: Path, upstream: int, keys: tokens.KeyMaterial,
                   admin_port: int | None, access_log: bool = False) -> tuple[int, int]:
    port = free_port()
    jwt_auth = {"providers": ["bench"], "require": {"scopes": [tokens.SCOPE]}}
    config: dict[str, object] = {
        "listen": f"127.0.0.1:{port}", "workers": 1, "timeouts": {"drain_s": 2},
        # with --access-log: every line written (to /dev/null, so the disk is not measured)
        "access_log": {"enabled": True, "path": "/dev/null"} if access_log else {"enabled": False},
        "providers": [{"name": "bench", "issuer": tokens.ISSUER, "audiences": [tokens.AUDIENCE],
                       "algorithms": ["RS256"], "jwks_file": str(keys.jwks_path)}],
        "upstreams": [{"name": "up", "targets": [f"http://127.0.0.1:{upstream}"]}],
        "routes": [
            {"name": "plain", "match": {"path_prefix": "/plain"}, "upstream": "up",
             "auth": "none"},
            {"name": "jwt", "match": {"path_prefix": "/jwt"}, "upstream": "up", "auth": jwt_auth},
        ],
    }
    if admin_port is not None:
        config["admin"] = {"listen": f"127.0.0.1:{admin_port}", "token_env": "WG_BENCH_ADMIN"}
    tag = "metrics" if admin_port is not None else "nometrics"
    conf = workdir / f"wardgate-{tag}.yaml"
    conf.write_text(yaml.safe_dump(config, sort_keys=False))
    m = procs.start(f"wardgate-{tag}", pinned(targets.PROXY_CPU, [
        str(targets.WARDGATE), "run", "--config", str(conf)]))
    wait_for_port(port, m, timeout=30)
    if admin_port is not None:
        wait_for_port(admin_port, m, timeout=30)
    return port, m.pid


def scrape_requests(admin_port: int) -> int:
    """Sum of the duration histogram's _count series: every request the gateway finished."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("wardgate_http_server_request_duration_seconds_count"):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--access-log", action="store_true",
                    help="both gateways write the access log (to /dev/null): the default config")
    args = ap.parse_args(argv)
    for tool in ("wrk", "nginx"):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            print(f"{tool} not installed: make bench installs it", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="wardgate-metrics-bench-"))
    procs = ProcessSet(work)
    try:
        keys = tokens.load_or_create_key(BENCH / "results" / "cache")
        token = keys.mint("bench-user", int(time.time()), 3600)
        upstream = targets.start_upstream(procs, work)
        admin = free_port()
        gates = {"off": start_wardgate(procs, work, upstream.port, keys, None, args.access_log),
                 "on": start_wardgate(procs, work, upstream.port, keys, admin, args.access_log)}
        lua = wrkrun.script(work, "report")
        cases = [(g, r) for r in ROUTES for g in ("off", "on")]
        results: dict[tuple[str, str], list[tuple[float, int, float]]] = {c: [] for c in cases}
        sent = 0
        for g, r in cases:  # warm-up, and a check that each route proxies
            headers = {"Authorization": f"Bearer {token}"} if r == "jwt" else None
            w = wrkrun.run(f"http://127.0.0.1:{gates[g][0]}/{r}", 1, args.connections, lua,
                           headers)
            if w.errors or not w.requests:
                raise RuntimeError(f"{g} /{r}: {w.errors} errors in warm-up")
        for rnd in range(args.rounds):
            for g, r in (cases if rnd % 2 == 0 else list(reversed(cases))):
                port, pid = gates[g]
                headers = {"Authorization": f"Bearer {token}"} if r == "jwt" else None
                c0 = tree_cpu(pid)
                w = wrkrun.run(f"http://127.0.0.1:{port}/{r}", args.duration, args.connections,
                               lua, headers)
                results[(g, r)].append((w.rps, w.p99_us, (tree_cpu(pid) - c0)
                                        / max(w.requests, 1) * 1e6))
                if w.errors:
                    print(f"warning: metrics {g} /{r} round {rnd}: {w.errors} errors")
            sent = scrape_requests(admin)
        med = {c: tuple(statistics.median(x[i] for x in v) for i in range(3))
               for c, v in results.items()}
        print(f"\nmetrics on vs off{' (access log on)' if args.access_log else ''}, {args.rounds} interleaved rounds of {args.duration:.0f} s, "
              f"wrk -t1 -c{args.connections}, medians\n")
        print("| route | req/s off | req/s on | on vs off | p99 us off | p99 us on | "
              "CPU us/req off | CPU us/req on |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in ROUTES:
            off, on = med[("off", r)], med[("on", r)]
            print(f"| {r} | {off[0]:,.0f} | {on[0]:,.0f} | {on[0] / off[0]:.2f}x | {off[1]:,.0f} "
                  f"| {on[1]:,.0f} | {off[2]:.1f} | {on[2]:.1f} |")
        print(f"\n/metrics counted {sent:,} finished requests on the gateway with metrics")
        return 0
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
