"""What detection costs on the request path: two wardgates side by side in one run, identical
(metrics on, same routes, same nginx upstream) but for the `detection:` section (`make bench`).

Each gateway has /plain (no auth: detection never watches it) and /jwt (RS256 bearer, one
token: the verified-token cache). With detection, /jwt is watched with `action: deny`, so
every request pays the whole price: the compiled step's flag check after authentication, the
append to the detector's buffer when it ends, and its share of the detector's tick (every
signal over every request, in the same worker). Thresholds are set so the one bench user is
never flagged (a refused request would cost less and measure nothing). Interleaved rounds of
`wrk -t1 -c64`; prints req/s and p99 with detection against without, CPU time per request,
and the events the detector examined (from /metrics), to show it kept up.
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
NEVER = 1_000_000_000  # a threshold the bench never reaches


def start_wardgate(procs: ProcessSet, workdir: Path, upstream: int, keys: tokens.KeyMaterial,
                   detection: bool) -> tuple[int, int, int]:
    port, admin = free_port(), free_port()
    jwt_auth = {"providers": ["bench"], "require": {"scopes": [tokens.SCOPE]}}
    config: dict[str, object] = {
        "listen": f"127.0.0.1:{port}", "workers": 1, "timeouts": {"drain_s": 2},
        "access_log": {"enabled": False},
        "admin": {"listen": f"127.0.0.1:{admin}", "token_env": "WG_BENCH_ADMIN"},
        "providers": [{"name": "bench", "issuer": tokens.ISSUER, "audiences": [tokens.AUDIENCE],
                       "algorithms": ["RS256"], "jwks_file": str(keys.jwks_path)}],
        "upstreams": [{"name": "up", "targets": [f"http://127.0.0.1:{upstream}"]}],
        "routes": [
            {"name": "plain", "match": {"path_prefix": "/plain"}, "upstream": "up",
             "auth": "none"},
            {"name": "jwt", "match": {"path_prefix": "/jwt"}, "upstream": "up", "auth": jwt_auth},
        ],
    }
    if detection:
        config["detection"] = {"action": "deny", "rate": {"min_requests": NEVER}}
    tag = "detect" if detection else "nodetect"
    conf = workdir / f"wardgate-{tag}.yaml"
    conf.write_text(yaml.safe_dump(config, sort_keys=False))
    m = procs.start(f"wardgate-{tag}", pinned(targets.PROXY_CPU, [
        str(targets.WARDGATE), "run", "--config", str(conf)]))
    wait_for_port(port, m, timeout=30)
    wait_for_port(admin, m, timeout=30)
    return port, m.pid, admin


def scrape(admin_port: int, name: str) -> float:
    """The sum of one metric's samples on /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args(argv)
    for tool in ("wrk", "nginx"):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            print(f"{tool} not installed: make bench installs it", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="wardgate-detect-bench-"))
    procs = ProcessSet(work)
    try:
        keys = tokens.load_or_create_key(BENCH / "results" / "cache")
        token = keys.mint("bench-user", int(time.time()), 3600)
        upstream = targets.start_upstream(procs, work)
        gates = {"off": start_wardgate(procs, work, upstream.port, keys, False),
                 "on": start_wardgate(procs, work, upstream.port, keys, True)}
        lua = wrkrun.script(work, "report")
        cases = [(g, r) for r in ROUTES for g in ("off", "on")]
        results: dict[tuple[str, str], list[tuple[float, int, float]]] = {c: [] for c in cases}
        for g, r in cases:  # warm-up, and a check that each route proxies
            headers = {"Authorization": f"Bearer {token}"} if r == "jwt" else None
            w = wrkrun.run(f"http://127.0.0.1:{gates[g][0]}/{r}", 1, args.connections, lua,
                           headers)
            if w.errors or not w.requests:
                raise RuntimeError(f"{g} /{r}: {w.errors} errors in warm-up")
        for rnd in range(args.rounds):
            for g, r in (cases if rnd % 2 == 0 else list(reversed(cases))):
                port, pid, _ = gates[g]
                headers = {"Authorization": f"Bearer {token}"} if r == "jwt" else None
                c0 = tree_cpu(pid)
                w = wrkrun.run(f"http://127.0.0.1:{port}/{r}", args.duration, args.connections,
                               lua, headers)
                results[(g, r)].append((w.rps, w.p99_us, (tree_cpu(pid) - c0)
                                        / max(w.requests, 1) * 1e6))
                if w.errors:
                    print(f"warning: detection {g} /{r} round {rnd}: {w.errors} errors")
        time.sleep(0.5)  # the detector's last tick
        admin_on = gates["on"][2]
        examined = scrape(admin_on, "wardgate_detection_events_total")
        verdicts = scrape(admin_on, "wardgate_detections_total")
        jwt_requests = scrape(admin_on, 'wardgate_http_server_request_duration_seconds_count'
                              '{route="jwt"')
        med = {c: tuple(statistics.median(x[i] for x in v) for i in range(3))
               for c, v in results.items()}
        print(f"\ndetection on vs off, {args.rounds} interleaved rounds of {args.duration:.0f} s, "
              f"wrk -t1 -c{args.connections}, medians\n")
        print("| route | req/s off | req/s on | on vs off | p99 us off | p99 us on | "
              "CPU us/req off | CPU us/req on |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in ROUTES:
            off, on = med[("off", r)], med[("on", r)]
            print(f"| {r} | {off[0]:,.0f} | {on[0]:,.0f} | {on[0] / off[0]:.2f}x | {off[1]:,.0f} "
                  f"| {on[1]:,.0f} | {off[2]:.1f} | {on[2]:.1f} |")
        print(f"\nthe detector examined {examined:,.0f} of {jwt_requests:,.0f} /jwt requests; "
              f"{verdicts:,.0f} verdicts")
        return 0
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
