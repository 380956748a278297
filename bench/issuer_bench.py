"""Issuer throughput: refresh_token grants/s per signing algorithm, and logins/s (argon2-bound).

Starts a real issuer (`wardgate issuer`, one process, SQLite) on 127.0.0.1 per algorithm and
prints a Markdown table. The issuer is pinned to core 0 and the load generator to core 1. The
load generator is wrk (bench/lua/issuer_refresh.lua keeps one refresh family per connection)
when installed; otherwise an asyncio httpx client, which saturates long before the issuer does.

    .venv/bin/python bench/issuer_bench.py [--seconds 5] [--concurrency 16]

`--in-process N` instead drives the ASGI app directly (no sockets, no uvicorn): N refresh
grants from `--concurrency` concurrent families on uvloop, in this process pinned to one core;
it prints the CPU time per grant (all threads, and the event loop's thread alone; the rest is
aiosqlite's threads). `--profile FILE` adds cProfile (FILE.<algorithm>).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.issuer.support import IssuerProcess, base_config  # noqa: E402

DEFAULT_HASH = {"time_cost": 3, "memory_cost_kib": 65536, "parallelism": 4}


async def _refresh_worker(http: httpx.AsyncClient, token: str,
                          stop: float) -> tuple[int, str]:
    n = 0
    while time.monotonic() < stop:
        r = await http.post("/token", data={"grant_type": "refresh_token",
                                            "refresh_token": token})
        r.raise_for_status()
        token = r.json()["refresh_token"]
        n += 1
    return n, token


async def refresh_rate(iss: IssuerProcess, seconds: float, concurrency: int) -> float:
    async with httpx.AsyncClient(base_url=iss.url, timeout=30,
                                 limits=httpx.Limits(max_connections=concurrency)) as http:
        tokens = []
        for _ in range(concurrency):  # one family per worker: rotation is per family
            r = await http.post("/login", json={"username": "bench", "password": "bench-pw"})
            r.raise_for_status()
            tokens.append(r.json()["refresh_token"])
        warm = await asyncio.gather(*(_refresh_worker(http, t, time.monotonic() + 1)
                                      for t in tokens))
        start = time.monotonic()
        done = await asyncio.gather(*(_refresh_worker(http, t, start + seconds)
                                      for _, t in warm))
        return sum(n for n, _ in done) / (time.monotonic() - start)


async def jwks_rate(iss: IssuerProcess, seconds: float, concurrency: int) -> float:
    """The framework's ceiling on this machine: a GET that touches neither database nor keys."""
    async def worker(http: httpx.AsyncClient, stop: float) -> int:
        n = 0
        while time.monotonic() < stop:
            (await http.get("/.well-known/jwks.json")).raise_for_status()
            n += 1
        return n
    async with httpx.AsyncClient(base_url=iss.url, timeout=30,
                                 limits=httpx.Limits(max_connections=concurrency)) as http:
        start = time.monotonic()
        counts = await asyncio.gather(*(worker(http, start + seconds)
                                        for _ in range(concurrency)))
        return sum(counts) / (time.monotonic() - start)


async def login_rate(iss: IssuerProcess, seconds: float, concurrency: int) -> float:
    async def worker(http: httpx.AsyncClient, stop: float) -> int:
        n = 0
        while time.monotonic() < stop:
            r = await http.post("/login", json={"username": "bench", "password": "bench-pw"})
            r.raise_for_status()
            n += 1
        return n
    async with httpx.AsyncClient(base_url=iss.url, timeout=60) as http:
        start = time.monotonic()
        counts = await asyncio.gather(*(worker(http, start + seconds) for _ in range(concurrency)))
        return sum(counts) / (time.monotonic() - start)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CPU_PER_REQUEST: dict[str, float] = {}  # path -> the issuer's CPU ms per answer in the last run


def wrk_rate(iss: IssuerProcess, seconds: float, concurrency: int, path: str,
             tokens: list[str] | None = None) -> float:
    args = ["taskset", "-c", "1", "wrk", "-t1", f"-c{concurrency}", f"-d{seconds:.0f}s",
            "--timeout", "10s"]
    if tokens is not None:
        tfile = iss.workdir / "tokens.txt"
        tfile.write_text("\n".join(tokens) + "\n")
        args += ["-s", str(Path(__file__).resolve().parent / "lua" / "issuer_refresh.lua"),
                 iss.url, "--", str(tfile)]
    else:
        args.append(iss.url + path)
    assert iss.proc is not None
    cpu0 = _cpu_s(iss.proc.pid)
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    cpu = _cpu_s(iss.proc.pid) - cpu0
    if "Non-2xx" in out:
        raise RuntimeError("wrk saw error answers:\n" + out)
    done = re.search(r"(\d+) requests in", out)
    if done and int(done.group(1)):
        CPU_PER_REQUEST[path] = cpu / int(done.group(1)) * 1000
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def _tokens(iss: IssuerProcess, n: int) -> list[str]:
    with httpx.Client(base_url=iss.url, timeout=60) as http:
        return [http.post("/login", json={"username": "bench", "password": "bench-pw"})
                .json()["refresh_token"] for _ in range(n)]


async def _scratch_db(server: str, alg: str, *, create: bool) -> str:
    import asyncpg

    name = f"wg_issuer_bench_{alg.lower()}"
    conn = await asyncpg.connect(server.rstrip("/") + "/postgres")
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name}")
        if create:
            await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return server.rstrip("/") + "/" + name


async def _asgi_post(app: Any, path: str, body: bytes, ctype: bytes) -> tuple[int, bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", ctype),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 9000), "state": {}}
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(msg: dict[str, Any]) -> None:
        nonlocal status
        if msg["type"] == "http.response.start":
            status = msg["status"]
        elif msg["type"] == "http.response.body":
            chunks.append(msg.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def _in_process(cfg_dict: dict[str, Any], grants: int,
                      concurrency: int, profile: str | None) -> tuple[float, float, float]:
    """With the ASGI app called directly: CPU ms per grant (the process, and of that the
    event loop's thread; the rest is aiosqlite's threads), and grants per wall second."""
    import cProfile
    import json as _json

    from wardgate.config.issuer import IssuerConfig
    from wardgate.issuer import admin
    from wardgate.issuer.app import create_app

    cfg = IssuerConfig(**cfg_dict)
    await admin.add_user(cfg, "bench", "bench-pw", ["reader"])
    app = create_app(cfg)
    async with app.router.lifespan_context(app):
        login = _json.dumps({"username": "bench", "password": "bench-pw"}).encode()
        tokens = []
        for _ in range(concurrency):
            st, out = await _asgi_post(app, "/login", login, b"application/json")
            assert st == 200, out
            tokens.append(_json.loads(out)["refresh_token"])

        async def worker(token: str, n: int) -> str:
            for _ in range(n):
                body = b"grant_type=refresh_token&refresh_token=" + token.encode()
                st, out = await _asgi_post(app, "/token", body,
                                           b"application/x-www-form-urlencoded")
                assert st == 200, out
                token = _json.loads(out)["refresh_token"]
            return token

        tokens = await asyncio.gather(*(worker(t, 50) for t in tokens))  # warm-up
        per = max(1, grants // concurrency)
        prof = cProfile.Profile() if profile else None
        t0, w0, l0 = os.times(), time.perf_counter(), time.thread_time()
        if prof:
            prof.enable()
        await asyncio.gather(*(worker(t, per) for t in tokens))
        if prof:
            prof.disable()
            prof.dump_stats(profile)
        t1, w1, l1 = os.times(), time.perf_counter(), time.thread_time()
        n = per * concurrency
        cpu = (t1.user - t0.user) + (t1.system - t0.system)
        return cpu / n * 1000, (l1 - l0) / n * 1000, n / (w1 - w0)


def _pin(pid: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(pid, {0})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--algorithms", default="ES256,EdDSA,RS256")
    ap.add_argument("--httpx", action="store_true", help="use the httpx client even if wrk exists")
    ap.add_argument("--postgres", metavar="URL",
                    help="postgresql://user@host:port of a server where a scratch database "
                         "per algorithm may be created and dropped (default: SQLite)")
    ap.add_argument("--in-process", type=int, metavar="N", default=0,
                    help="drive the ASGI app in this process: N grants per algorithm")
    ap.add_argument("--profile", metavar="FILE", help="with --in-process: cProfile to FILE")
    args = ap.parse_args()
    if args.in_process:
        return in_process_main(args)
    rows: list[tuple[str, float, float | None]] = []
    with tempfile.TemporaryDirectory(prefix="wg-issuer-bench-") as tmp:
        for alg in args.algorithms.split(","):
            d = Path(tmp) / alg
            d.mkdir()
            extra = {}
            if args.postgres:
                extra["database_url"] = asyncio.run(_scratch_db(args.postgres, alg, create=True))
            iss = IssuerProcess(base_config(d, keys={"algorithm": alg}, **extra,
                                            password_hash=DEFAULT_HASH,
                                            throttle={"free_failures_per_user": 1000}), d)
            iss.add_user("bench", "bench-pw", ["reader"])
            iss.start()
            try:
                assert iss.proc is not None
                _pin(iss.proc.pid)
                use_wrk = shutil.which("wrk") and shutil.which("taskset") and not args.httpx
                if use_wrk:
                    # Spare families: a request cut off at the end of a run loses its token.
                    rate = wrk_rate(iss, args.seconds, args.concurrency, "/token",
                                    _tokens(iss, 2 * args.concurrency))
                else:
                    rate = asyncio.run(refresh_rate(iss, args.seconds, args.concurrency))
                rows.append((f"refresh_token grant, {alg}", rate,
                             CPU_PER_REQUEST.pop("/token", None)))
                if alg == args.algorithms.split(",")[0]:
                    base = (wrk_rate(iss, args.seconds, args.concurrency,
                                     "/.well-known/jwks.json") if use_wrk else
                            asyncio.run(jwks_rate(iss, args.seconds, args.concurrency)))
                    rows.insert(0, ("GET /.well-known/jwks.json (baseline: no DB, no signing)",
                                    base, CPU_PER_REQUEST.pop("/.well-known/jwks.json", None)))
                    lr = asyncio.run(login_rate(iss, args.seconds, 4))
                    h = DEFAULT_HASH
                    rows.append((f"POST /login, argon2id t={h['time_cost']} "
                                 f"m={h['memory_cost_kib']} KiB p={h['parallelism']}, {alg}", lr,
                                 None))
            finally:
                iss.stop()
                if args.postgres:
                    asyncio.run(_scratch_db(args.postgres, alg, create=False))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# wardgate issuer ({platform.python_version()}, {os.cpu_count()} cores, "
          f"issuer pinned to core 0, load generator on core 1, "
          f"{'PostgreSQL' if args.postgres else 'SQLite'}, "
          f"{args.seconds:.0f} s per row, "
          f"load average {load:.2f} at the end)\n")
    print("| operation | per second | issuer CPU ms per answer |\n|---|---:|---:|")
    for name, rate, cpu in rows:
        print(f"| {name} | {rate:,.0f} | {'' if cpu is None else f'{cpu:.3f}'} |")
    return 0


def in_process_main(args: argparse.Namespace) -> int:
    import uvloop

    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})  # one core, as the issuer under wrk
    print("| algorithm | CPU ms per grant | of which the event loop's thread "
          "| grants per wall second |\n|---|---:|---:|---:|")
    for alg in args.algorithms.split(","):
        with tempfile.TemporaryDirectory(prefix="wg-issuer-inproc-") as tmp:
            d = Path(tmp)
            extra = {}
            if args.postgres:
                extra["database_url"] = asyncio.run(_scratch_db(args.postgres, alg, create=True))
            cfg = base_config(d, keys={"algorithm": alg}, **extra)
            prof = f"{args.profile}.{alg}" if args.profile else None
            try:
                cpu, loop_cpu, rate = uvloop.run(
                    _in_process(cfg, args.in_process, args.concurrency, prof))
            finally:
                if args.postgres:
                    asyncio.run(_scratch_db(args.postgres, alg, create=False))
            print(f"| {alg} | {cpu:.3f} | {loop_cpu:.3f} | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
