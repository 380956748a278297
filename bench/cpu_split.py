"""User and system CPU per request of each proxy's process, side by side (`make bench`).

nginx, wardgate as built, and wardgate from its Python source (WARDGATE_PURE_PYTHON=1,
src/wardgate/_native.py) proxy make bench's upstream on the plain route, one worker each on
the proxy core, loaded in turn by `wrk -t1 -c64` for interleaved rounds. The worker's user
and system CPU time from /proc over each run, divided by the requests wrk counted, say
whose side a gap is on: the kernel's (socket calls, loopback delivery) or the proxy's own.

    .venv/bin/python bench/cpu_split.py [--rounds 3] [--duration 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import psutil
import targets
import wrkrun
from live_split import worker_of
from procs import ProcessSet


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=6.0, help="seconds per wrk run")
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="wardgate-cpu-split-"))
    procs = ProcessSet(workdir)
    try:
        up = targets.start_upstream(procs, workdir)
        nginx = targets.start_nginx_proxy(procs, workdir, up.port)
        built = targets.start_wardgate(procs, workdir, up.port, None)[0]
        source = targets.start_wardgate(procs, workdir, up.port, None, name="wardgate-source",
                                        env={"WARDGATE_PURE_PYTHON": "1"})[0]
        assert nginx.managed and built.managed and source.managed
        proxies = [("nginx", nginx, psutil.Process(nginx.managed.pid).children()[0]),
                   ("wardgate", built, worker_of(built.managed.pid)),
                   ("wardgate-source", source, worker_of(source.managed.pid))]
        lua = wrkrun.script(workdir, "report")
        seen: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _, _ in proxies}
        for rnd in range(args.rounds):
            for name, t, proc in proxies:
                url = f"http://127.0.0.1:{t.port}{t.path}"
                wrkrun.run(url, 1, 64, lua)  # warm the pools and the interpreter
                c0 = proc.cpu_times()
                res = wrkrun.run(url, args.duration, 64, lua)
                c1 = proc.cpu_times()
                n = res.requests or 1
                row = (res.rps, (c1.user - c0.user) / n * 1e6, (c1.system - c0.system) / n * 1e6)
                seen[name].append(row)
                print(f"round {rnd + 1}: {name:16} {row[0]:9,.0f} req/s  user {row[1]:5.1f}  "
                      f"system {row[2]:5.1f} µs/req", flush=True)
        print("\n| proxy | req/s | user µs/req | system µs/req | total | vs nginx (CPU) |")
        print("|---|---:|---:|---:|---:|---:|")
        base = statistics.median(u + s for _, u, s in seen["nginx"])
        for name, rows in seen.items():
            rps = statistics.median(r for r, _, _ in rows)
            user = statistics.median(u for _, u, _ in rows)
            system = statistics.median(s for _, _, s in rows)
            total = statistics.median(u + s for _, u, s in rows)
            print(f"| {name} | {rps:,.0f} | {user:.1f} | {system:.1f} | {total:.1f} | "
                  f"{base / total:.2f}x |")
    finally:
        procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
