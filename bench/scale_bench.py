"""Scale figures (`make bench`): connections held, a soak, workers 1 vs 2, TLS termination.

- held: 10,000 idle keep-alive connections held on one worker (each served one request
  first); memory per connection from the worker's RSS before and after, and the p99 of a
  `wrk -c64` run on /plain while they are held, against the same run without them.
- soak: about 2M requests on /plain (wrk rounds); the worker's RSS sampled after each round
  must stay flat (the figure is the growth from the second round to the last).
- workers: `workers: 1` against `workers: 2` on this machine (wrk -c64 on /plain). The machine
  has 2 cores and wrk and the upstream need one: read it as the cost of a second worker
  sharing, not as scaling.
- tls: handshakes/s (wrk with `Connection: close`, every request a new TLS connection) and
  keep-alive req/s over TLS, wardgate against nginx terminating TLS for the same upstream,
  same ECDSA P-256 certificate, TLS 1.3, rounds interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import targets
import wrkrun
import yaml
from procs import Managed, ProcessSet, free_port, pinned, wait_for_port

HELD = 10_000
SECTIONS = ("held", "soak", "workers", "tls")


def start_gateway(procs: ProcessSet, work: Path, upstream: int, name: str, workers: int = 1,
                  tls: tuple[Path, Path] | None = None) -> tuple[int, Managed]:
    port = free_port()
    cfg: dict[str, object] = {
        "listen": f"127.0.0.1:{port}", "workers": workers,
        "timeouts": {"drain_s": 2, "keepalive_s": 600},
        "access_log": {"enabled": False},
        "upstreams": [{"name": "up", "targets": [f"http://127.0.0.1:{upstream}"]}],
        "routes": [{"name": "plain", "match": {"path_prefix": "/plain"}, "upstream": "up",
                    "auth": "none"}],
    }
    if tls is not None:
        cfg["tls"] = {"cert": str(tls[0]), "key": str(tls[1])}
    conf = work / f"{name}.yaml"
    conf.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cpus = targets.PROXY_CPU if workers == 1 else "0,1"
    m = procs.start(name, pinned(cpus, [str(targets.WARDGATE), "run", "--config", str(conf)]))
    wait_for_port(port, m, timeout=30)
    return port, m


def worker_pids(m: Managed) -> list[int]:
    return [c.pid for c in psutil.Process(m.pid).children(recursive=True)
            if "worker" in " ".join(c.cmdline())]


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


async def _hold(port: int, n: int) -> list[asyncio.StreamWriter]:
    req = b"GET /plain HTTP/1.1\r\nHost: bench\r\n\r\n"
    sem = asyncio.Semaphore(256)

    async def one() -> asyncio.StreamWriter:
        async with sem:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(req)
            head = await r.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            await r.readexactly(length)
            return w

    return list(await asyncio.gather(*(one() for _ in range(n))))


def held(procs: ProcessSet, work: Path, upstream: int, lua: Path, duration: float) -> None:
    port, m = start_gateway(procs, work, upstream, "wardgate-held")
    [worker] = worker_pids(m)
    url = f"http://127.0.0.1:{port}/plain"
    wrkrun.run(url, 1, 64, lua)
    before_run = wrkrun.run(url, duration, 64, lua)
    base = rss(worker)
    loop = asyncio.new_event_loop()
    t0 = time.monotonic()
    writers = loop.run_until_complete(_hold(port, HELD))
    opened = time.monotonic() - t0
    time.sleep(1)
    grown = rss(worker) - base
    during = wrkrun.run(url, duration, 64, lua)
    for w in writers:
        w.close()
    loop.run_until_complete(asyncio.sleep(0.2))
    loop.close()
    print(f"\n## {HELD:,} keep-alive connections held by one worker\n")
    print(f"opened and served one request each in {opened:.1f} s; worker RSS "
          f"+{grown / 2**20:.1f} MiB = {grown / HELD / 1024:.1f} KiB per connection\n")
    print("| wrk -c64 on /plain | req/s | p50 us | p99 us | errors |")
    print("|---|---:|---:|---:|---:|")
    for label, w in (("without held connections", before_run), (f"with {HELD:,} held", during)):
        print(f"| {label} | {w.rps:,.0f} | {w.p50_us:,} | {w.p99_us:,} | {w.errors} |")
    procs.stop(m)


def soak(procs: ProcessSet, work: Path, upstream: int, lua: Path, total: int) -> None:
    port, m = start_gateway(procs, work, upstream, "wardgate-soak")
    [worker] = worker_pids(m)
    url = f"http://127.0.0.1:{port}/plain"
    done, samples, errors = 0, [], 0
    t0 = time.monotonic()
    while done < total:
        w = wrkrun.run(url, 10, 64, lua)
        done += w.requests
        errors += w.errors
        samples.append((done, rss(worker)))
    took = time.monotonic() - t0
    print(f"\n## soak: {done:,} requests on one worker in {took:.0f} s ({errors} errors)\n")
    print("| requests so far | worker RSS MiB |")
    print("|---:|---:|")
    for n, r in samples:
        print(f"| {n:,} | {r / 2**20:.1f} |")
    if len(samples) > 2:
        growth = samples[-1][1] - samples[1][1]
        print(f"\nRSS from the second round to the last: {growth / 2**20:+.1f} MiB")
    procs.stop(m)


def workers(procs: ProcessSet, work: Path, upstream: int, lua: Path, duration: float,
            rounds: int) -> None:
    gates = {n: start_gateway(procs, work, upstream, f"wardgate-w{n}", workers=n) for n in (1, 2)}
    res: dict[int, list[float]] = {1: [], 2: []}
    for rnd in range(rounds):
        for n in ((1, 2) if rnd % 2 == 0 else (2, 1)):
            w = wrkrun.run(f"http://127.0.0.1:{gates[n][0]}/plain", duration, 64, lua)
            res[n].append(w.rps)
    one, two = statistics.median(res[1]), statistics.median(res[2])
    print(f"\n## workers: 1 vs 2 (2 cores shared with wrk and the upstream), {rounds} rounds\n")
    print(f"| workers | req/s |\n|---|---:|\n| 1 | {one:,.0f} |\n| 2 | {two:,.0f} ({two / one:.2f}x) |")
    for _, m in gates.values():
        procs.stop(m)


def make_cert(work: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .sign(key, hashes.SHA256()))
    cp, kp = work / "bench-cert.pem", work / "bench-key.pem"
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return cp, kp


def start_nginx_tls(procs: ProcessSet, work: Path, upstream: int,
                    cert: tuple[Path, Path]) -> tuple[int, Managed]:
    prefix = work / "nginx-tls"
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(targets._nginx_main(prefix) + f"""http {{
{targets._nginx_http_common(prefix)}
    upstream backend {{
        server 127.0.0.1:{upstream};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port} ssl backlog=4096;
        ssl_certificate {cert[0]};
        ssl_certificate_key {cert[1]};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
    m = procs.start("nginx-tls", pinned(targets.PROXY_CPU, ["nginx", "-p", str(prefix), "-c",
                                                            str(conf)]))
    wait_for_port(port, m)
    return port, m


def tls(procs: ProcessSet, work: Path, upstream: int, lua: Path, duration: float,
        rounds: int) -> None:
    cert = make_cert(work)
    gates = {"wardgate": start_gateway(procs, work, upstream, "wardgate-tls", tls=cert),
             "nginx": start_nginx_tls(procs, work, upstream, cert)}
    res: dict[tuple[str, str], list[float]] = {}
    for rnd in range(rounds):
        order = ("wardgate", "nginx") if rnd % 2 == 0 else ("nginx", "wardgate")
        for who in order:
            url = f"https://127.0.0.1:{gates[who][0]}/plain"
            ka = wrkrun.run(url, duration, 64, lua)
            hs = wrkrun.run(url, duration, 16, lua, headers={"Connection": "close"})
            res.setdefault((who, "keep-alive"), []).append(ka.rps)
            res.setdefault((who, "handshakes"), []).append(hs.rps)
    print(f"\n## TLS termination (ECDSA P-256), {rounds} interleaved rounds\n")
    print("| | wardgate | nginx | wardgate / nginx |\n|---|---:|---:|---:|")
    for kind, label in (("keep-alive", "keep-alive req/s (wrk -c64)"),
                        ("handshakes", "new TLS connections/s (wrk -c16, Connection: close)")):
        w = statistics.median(res[("wardgate", kind)])
        n = statistics.median(res[("nginx", kind)])
        print(f"| {label} | {w:,.0f} | {n:,.0f} | {w / n:.2f}x |")
    for _, m in gates.values():
        procs.stop(m)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(SECTIONS), help="from " + ",".join(SECTIONS))
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--soak-requests", type=int, default=2_000_000)
    args = ap.parse_args(argv)
    only = [s for s in args.only.split(",") if s]
    for s in only:
        if s not in SECTIONS:
            ap.error(f"unknown section {s!r}")
    for tool in ("wrk", "nginx"):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            print(f"{tool} not installed: make bench installs it", file=sys.stderr)
            return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = HELD + 1024
    if soft < want:  # the gateway inherits it from us
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    work = Path(tempfile.mkdtemp(prefix="wardgate-scale-bench-"))
    procs = ProcessSet(work)
    try:
        upstream = targets.start_upstream(procs, work)
        lua = wrkrun.script(work, "report")
        if "held" in only:
            held(procs, work, upstream.port, lua, args.duration)
        if "soak" in only:
            soak(procs, work, upstream.port, lua, args.soak_requests)
        if "workers" in only:
            workers(procs, work, upstream.port, lua, args.duration, args.rounds)
        if "tls" in only:
            tls(procs, work, upstream.port, lua, args.duration, args.rounds)
        return 0
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
