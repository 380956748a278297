"""wardgate side by side with nginx and HAProxy: `make bench` (see docs/benchmarks.md).

Starts a tiny nginx upstream, nginx and HAProxy as plain proxies, HAProxy verifying an RS256 JWT,
and wardgate; measures each with wrk in interleaved rounds; prints a Markdown table and writes the
raw results to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import report
import targets
import tokens
import wrkrun
from procs import ProcessSet
from targets import Target

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
CACHE = RESULTS / "cache"
SCENARIOS = ("plain", "jwt-same", "jwt-distinct", "jwt-forged")
PROXIES = ("direct", "nginx", "haproxy", "haproxy-jwt", "wardgate", "wardgate-accesslog", "floor")
DEFAULT_ONLY = ("nginx", "haproxy", "haproxy-jwt", "wardgate", "wardgate-accesslog")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (10)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    p.add_argument("--connections", type=int, default=64, help="wrk -c (64)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load first (3)")
    p.add_argument("--only", default=",".join(DEFAULT_ONLY),
                   help=f"proxies to measure, comma-separated, from {','.join(PROXIES)} "
                        "('direct' = wrk straight at the upstream, a ceiling for core 0; "
                        "'floor' = bench/floor_proxy.py, uvloop + httptools with no checks)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="from " + ",".join(SCENARIOS))
    p.add_argument("--tokens", type=int, default=100_000, help="distinct tokens for jwt-distinct")
    p.add_argument("--fresh-tokens", action="store_true", help="re-mint key-cached tokens")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 3 s runs, 1 round, 1 s warm-up (RSS: 100k requests)")
    p.add_argument("--rss", action="store_true",
                   help="also send 1M requests to wardgate's plain route, sampling worker RSS")
    p.add_argument("--rss-requests", type=int, default=1_000_000)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    p.add_argument("--alt-python", metavar="PATH",
                   help="also measure 'wardgate-alt': the same code and packages run by another "
                        "CPython 3.11 (for example an interpreter built without PGO/LTO), side "
                        "by side with the venv's")
    p.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                   help="first wait up to this long for both cores to be under 12%% busy")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.warmup = 3.0, 1, 1.0
        if args.rss_requests == 1_000_000:
            args.rss_requests = 100_000
    args.only = [n.strip() for n in args.only.split(",") if n.strip()]
    args.scenarios = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    for name in args.only:
        if name not in PROXIES:
            p.error(f"--only: unknown proxy {name!r}; known: {', '.join(PROXIES)}")
    for name in args.scenarios:
        if name not in SCENARIOS:
            p.error(f"--scenarios: unknown {name!r}; known: {', '.join(SCENARIOS)}")
    return args


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def _interpreter(python: str) -> str:
    """Version and build of a Python: 'static' when libpython is linked in (as distributions
    ship it, with PGO and LTO), 'shared' when it is loaded as libpython.so."""
    code = ("import sys; print(sys.version.split()[0], sys.executable, "
            "'shared' if 'libpython' in open('/proc/self/maps').read() else 'static')")
    return _first_line([python, "-c", code])


def environment(alt_python: str | None = None) -> dict[str, object]:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    rev = _first_line(["git", "-C", str(BENCH.parent), "describe", "--always", "--dirty"])
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": _interpreter(sys.executable),
        "alt_python": _interpreter(alt_python) if alt_python else "-",
        "nginx": _first_line(["nginx", "-v"]),
        "haproxy": _first_line(["haproxy", "-v"]),
        "wrk": _first_line(["wrk", "-v"]),
        "wardgate_git": rev,
        "loadavg_at_start": os.getloadavg(),
        "command": " ".join(["bench/run.py", *sys.argv[1:]]),
    }


def probe(target: Target, token: str | None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=5)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", target.path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def check(target: Target, good: str | None, bad: str | None) -> None:
    """Refuse to measure a target that does not proxy, or a JWT one that does not verify."""
    status, body = probe(target, good)
    if status != 200 or body != b"ok":
        raise RuntimeError(f"{target.name}: GET {target.path} gave {status} {body[:200]!r}")
    if target.kind == "jwt":
        for label, tok in (("no token", None), ("tampered token", bad)):
            status, _ = probe(target, tok)
            if status not in (401, 403):
                raise RuntimeError(f"{target.name}: {label} was answered {status}, not 401")


def _tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            t = proc.cpu_times()
            total += t.user + t.system
    except psutil.Error:
        pass
    return total


def measure(target: Target, scenario: str, args: argparse.Namespace, lua: dict[str, Path],
            token: str | None, token_path: Path | None, offset: int,
            duration: float) -> tuple[wrkrun.WrkResult, float | None, list[float]]:
    url = f"http://127.0.0.1:{target.port}{target.path}"
    pid = target.managed.pid if target.managed and target.name != "direct" else None
    cores_before = psutil.cpu_times(percpu=True)
    cpu_before, wall_before = (_tree_cpu_seconds(pid) if pid else 0.0), time.monotonic()
    if scenario in ("jwt-distinct", "jwt-forged"):
        assert token_path is not None
        path = token_path if scenario == "jwt-distinct" else tokens.forged_file(token_path)
        result = wrkrun.run(url, duration, args.connections, lua["tokens"],
                            args=[str(path), str(offset)])
    else:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        result = wrkrun.run(url, duration, args.connections, lua["report"], headers=headers)
    wall = time.monotonic() - wall_before
    cpu = (_tree_cpu_seconds(pid) - cpu_before) / wall * 100 if pid else None
    busy = [_busy_pct(a, b) for a, b in zip(cores_before, psutil.cpu_times(percpu=True),
                                            strict=True)]
    return result, cpu, busy


def _busy_pct(before: object, after: object) -> float:
    """Share of a core's time not idle between two psutil cpu_times snapshots."""
    fields = [f for f in before._fields if f not in ("guest", "guest_nice")]  # type: ignore[attr-defined]
    total = sum(getattr(after, f) - getattr(before, f) for f in fields)
    idle = sum(getattr(after, f) - getattr(before, f) for f in ("idle", "iowait"))
    return round(100 * (total - idle) / total, 1) if total > 0 else 0.0


def plan(args: argparse.Namespace, available: dict[str, Target]) -> list[tuple[str, Target]]:
    pairs = []
    for scenario in args.scenarios:
        for target in available.values():
            if (scenario == "plain") == (target.kind == "plain"):
                pairs.append((scenario, target))
    return pairs


def upstream_requests(port: int) -> int:
    """nginx stub_status on the upstream: every request any proxy forwarded so far."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/__bench_status")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return int(text.splitlines()[2].split()[2])


def rss_check(wardgate: Target, upstream: Target, args: argparse.Namespace,
              lua: Path) -> list[dict[str, float]]:
    """Load wardgate's plain route with wrk until the upstream has seen --rss-requests more
    requests, sampling the worker's RSS at every tenth of the way."""
    assert wardgate.managed is not None
    supervisor = psutil.Process(wardgate.managed.pid)
    step = max(1, args.rss_requests // 10)
    series: list[dict[str, float]] = []
    base = upstream_requests(upstream.port)

    def sample(done: int) -> None:
        workers = supervisor.children(recursive=True) or [supervisor]
        rss = max(w.memory_info().rss for w in workers) / 2**20
        series.append({"requests": done, "worker_rss_mb": round(rss, 1)})
        print(f"  after {done:>9,} requests: worker RSS {rss:6.1f} MB", flush=True)

    print(f"\nRSS check: {args.rss_requests:,} requests to wardgate {wardgate.path}, "
          f"sampled every {step:,} (counted by the upstream)", flush=True)
    sample(0)
    proc = wrkrun.start(f"http://127.0.0.1:{wardgate.port}{wardgate.path}", args.connections, lua)
    try:
        next_mark = step
        while next_mark <= args.rss_requests:
            if proc.poll() is not None:
                raise RuntimeError(f"wrk ended early: {proc.stderr.read() if proc.stderr else ''}")
            done = upstream_requests(upstream.port) - base
            if done >= next_mark:
                sample(done)
                next_mark += step
            else:
                time.sleep(0.05)
    finally:
        result = wrkrun.stop(proc)
    if result is not None and result.errors:
        print(f"  ({result.errors:,} wrk errors during the RSS check)")
    return series


def wait_quiet(limit_s: float) -> None:
    """On a shared machine, start when nothing else is running (or give up after limit_s)."""
    deadline = time.monotonic() + limit_s
    while True:
        busy = max(psutil.cpu_percent(interval=5, percpu=True))
        if busy < 12:
            return
        if time.monotonic() >= deadline:
            print(f"machine still busy ({busy:.0f}% on one core): starting anyway", flush=True)
            return
        print(f"waiting for a quiet machine: {busy:.0f}% busy on one core", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet)
    env = environment(args.alt_python)
    print("# wardgate bench", env["date_utc"])
    for key in ("host", "cpu", "cores", "kernel", "python", "alt_python", "nginx", "haproxy", "wrk",
                "wardgate_git", "loadavg_at_start", "command"):
        print(f"- {key}: {env[key]}")
    print(f"- wrk -t1 -c{args.connections} -d{args.duration:g}s --latency; {args.rounds} round(s); "
          f"proxies on CPU {targets.PROXY_CPU}, wrk + upstream nginx on CPU {targets.LOAD_CPU}",
          flush=True)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a shell may have started us with it ignored (background jobs), and the
    # finally block below must run however we are asked to stop.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_term)
    workdir = Path(tempfile.mkdtemp(prefix="wardgate-bench-"))
    procs = ProcessSet(workdir)
    runs: list[dict] = []
    unavailable: dict[str, str] = {}
    rss_series: list[dict[str, float]] | None = None
    try:
        jwt_wanted = any(s != "plain" for s in args.scenarios)
        keys = tokens.load_or_create_key(CACHE) if jwt_wanted else None
        token = keys.mint("user-repeated", int(time.time())) if keys else None
        bad = tokens.tampered(token) if token else None
        token_path = (tokens.token_file(keys, CACHE, args.tokens, args.fresh_tokens)
                      if keys and {"jwt-distinct", "jwt-forged"} & set(args.scenarios)
                      else None)
        lua = {name: wrkrun.script(workdir, name) for name in ("report", "tokens")}

        upstream = targets.start_upstream(procs, workdir)
        available: dict[str, Target] = {}
        if "direct" in args.only:
            available["direct"] = Target("direct", "plain", upstream.port, targets.PLAIN_PATH,
                                         upstream.managed)
        starters = {
            "nginx": lambda: [targets.start_nginx_proxy(procs, workdir, upstream.port)],
            "haproxy": lambda: [targets.start_haproxy(procs, workdir, upstream.port, None)],
            "haproxy-jwt": lambda: [targets.start_haproxy(procs, workdir, upstream.port, keys)],
            "floor": lambda: [targets.start_floor(procs, upstream.port)],
        }
        auth_ok, auth_why = targets.wardgate_auth_available()
        for name, access_log in (("wardgate", False), ("wardgate-accesslog", True)):
            starters[name] = (lambda a=access_log: targets.start_wardgate(
                procs, workdir, upstream.port, keys if auth_ok else None, access_log=a))
        if args.alt_python:
            starters["wardgate-alt"] = lambda: targets.start_wardgate(
                procs, workdir, upstream.port, keys if auth_ok else None, name="wardgate-alt",
                python=args.alt_python)
            args.only.append("wardgate-alt")
        if jwt_wanted and not auth_ok and "wardgate" in args.only:
            unavailable["wardgate-jwt"] = auth_why
        for name in args.only:
            if name == "direct" or (name == "haproxy-jwt" and not jwt_wanted):
                continue
            try:
                for target in starters[name]():
                    if name == "wardgate-accesslog" and target.kind == "jwt":
                        continue
                    check(target, token, bad)
                    available[target.name] = target
            except Exception as exc:
                unavailable[name] = str(exc).strip().replace("\n", " | ")[:600]
                print(f"! {name} unavailable: {unavailable[name]}", flush=True)

        pairs = plan(args, available)
        sent: dict[str, int] = {}
        if args.warmup > 0:
            print(f"\nwarm-up: {args.warmup:g}s per proxy and scenario", flush=True)
            for scenario, target in pairs:
                offset = sent.get(target.name, 0)
                warm, _, _ = measure(target, scenario, args, lua, token, token_path, offset,
                                     args.warmup)
                if scenario == "jwt-distinct":
                    sent[target.name] = offset + warm.requests
        for rnd in range(args.rounds):
            shift = rnd % max(1, len(pairs))
            order = pairs[shift:] + pairs[:shift]
            print(f"\nround {rnd + 1}/{args.rounds}", flush=True)
            for scenario, target in order:
                offset = sent.get(target.name, 0)
                result, cpu, busy = measure(target, scenario, args, lua, token, token_path,
                                            offset, args.duration)
                notes = []
                if scenario == "jwt-distinct":
                    sent[target.name] = offset + result.requests
                    if sent[target.name] > args.tokens:
                        notes.append(f"token pool ({args.tokens:,}) cycled: no token repeats "
                                     "within the verified-token cache's admission window")
                if scenario == "jwt-forged":
                    if result.err_status < result.requests:
                        notes.append("FORGED TOKENS ANSWERED WITHOUT AN ERROR STATUS")
                elif result.err_status:
                    notes.append("non-2xx answers")
                proxy_core = int(targets.PROXY_CPU)
                if cpu is not None and busy[proxy_core] - cpu > 10:
                    notes.append("other processes used the proxy core")
                runs.append({"round": rnd + 1, "scenario": scenario, "target": target.name,
                             "url_path": target.path, "wrk": result.as_dict(),
                             "proxy_cpu_pct": round(cpu, 1) if cpu is not None else None,
                             "core_busy_pct": busy, "notes": notes,
                             "loadavg": os.getloadavg()})
                cpu_s = f"{cpu:4.0f}%" if cpu is not None else "  n/a"
                print(f"  {scenario:<13} {target.name:<20} {result.rps:>9,.0f} req/s  "
                      f"p50 {result.p50_us / 1000:6.2f} ms  p99 {result.p99_us / 1000:6.2f} ms  "
                      f"cpu {cpu_s}  cores {'/'.join(f'{b:.0f}%' for b in busy)}  "
                      f"errors {result.errors}", flush=True)
            for target in available.values():
                if target.managed and not target.managed.alive():
                    raise RuntimeError(f"{target.name} died during the bench:\n"
                                       f"{target.managed.log_tail()}")

        if args.rss:
            # A fresh wardgate (plain route only), so the series starts from an idle worker and
            # is not inflated by the JWT scenarios' verified-token cache.
            for target in available.values():
                if target.managed and target.name != "direct" and target.managed.alive():
                    procs.stop(target.managed)
            try:
                fresh = targets.start_wardgate(procs, workdir, upstream.port, None,
                                               name="wardgate-rss")[0]
                check(fresh, None, None)
            except Exception as exc:
                unavailable["wardgate RSS check"] = str(exc).strip().replace("\n", " | ")[:600]
            else:
                rss_series = rss_check(fresh, upstream, args, lua["report"])
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # let the clean-up finish
        procs.stop_all()
        if args.keep:
            print(f"(kept {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    summary = report.summarise(runs)
    table = report.markdown(summary, unavailable)
    print("\n" + table)
    if rss_series:
        peak = max(s["worker_rss_mb"] for s in rss_series)
        half = rss_series[len(rss_series) // 2]["worker_rss_mb"]
        last = rss_series[-1]["worker_rss_mb"]
        print(f"RSS: peak {peak:.1f} MB (target <= 80 MB); from {rss_series[len(rss_series) // 2]['requests']:,} "
              f"to {rss_series[-1]['requests']:,} requests: {last - half:+.1f} MB")
    out = RESULTS / f"bench-{env['date_utc']}.json".replace(":", "")
    report.write_json(out, {"environment": env, "arguments": vars(args), "runs": runs,
                            "summary": summary, "unavailable": unavailable,
                            "rss": rss_series, "markdown": table})
    print(f"raw results: {out.relative_to(BENCH.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
