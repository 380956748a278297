"""What the revocation feed delivers and costs (`make bench`, docs/benchmarks.md).

1. Propagation: a real issuer (`wardgate issuer`, relaying to a local redis-server) and two
   gateway instances of two workers each reading the stream. Each of `--count` tokens
   (client_credentials, RS256) is first accepted by every gateway connection, then revoked
   with RFC 7009 (`POST /revoke`); the time from sending the revocation to the moment every
   watched connection (`--watchers` kept-alive connections per gateway, spread over both
   workers by SO_REUSEPORT) answers 401 is one sample. Revocations go in rounds of
   `--batch` at once. Prints p50/p99/max against the issue's target (< 1 s).
2. Cost: the jwt-same route (one RS256 token, the verified-token cache) on two otherwise
   identical gateways, one with revocation state (a Redis stream holding `--entries` jti and
   a hundred subject entries, one of them the token's own subject from before its `iat`,
   so each request takes every lookup) and one without `revocation:`; interleaved rounds of
   `wrk -t1 -c64`, each gateway one worker on the proxy core. Prints req/s side by side and
   the ratio against the target (>= 0.97x).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import targets
import tokens
import wrkrun
import yaml
from procs import Managed, ProcessSet, free_port, pinned, wait_for_port

BENCH = Path(__file__).resolve().parent
FEED_TOKEN = "revoke-bench-feed-token-0123456789"
STREAM = "{wardgate:revocations}"


# -- processes -----------------------------------------------------------------------------
def start_redis(procs: ProcessSet, work: Path) -> int:
    port = free_port()
    m = procs.start("redis", pinned(targets.LOAD_CPU, [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(work)]))
    wait_for_port(port, m)
    return port


def wait_started(m: Managed, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if '"event":"gateway_started"' in m.log.read_text(errors="replace"):
            return
        if not m.alive():
            raise RuntimeError(f"{m.name} exited:\n{m.log_tail()}")
        time.sleep(0.1)
    raise RuntimeError(f"{m.name} did not start:\n{m.log_tail()}")


def start_issuer(procs: ProcessSet, work: Path, redis: int) -> tuple[str, Path]:
    port = free_port()
    (work / "feed.token").write_text(FEED_TOKEN)
    cfg: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}", "issuer": f"http://127.0.0.1:{port}",
        "database_url": f"sqlite:///{work / 'issuer.db'}",
        "keys": {"dir": str(work / "keys"), "algorithm": "RS256"},
        "password_hash": {"time_cost": 1, "memory_cost_kib": 1024, "parallelism": 1},
        "state": {"redis_url": f"redis://127.0.0.1:{redis}/0", "timeout_ms": 500},
        "revocations": {"token_file": str(work / "feed.token")},
    }
    path = work / "issuer.yaml"
    path.write_text(yaml.safe_dump(cfg))
    m = procs.start("issuer", [str(targets.WARDGATE), "issuer", "-c", str(path),
                               "--log-level", "warning"])
    wait_for_port(port, m, timeout=30)
    return cfg["issuer"], path


def start_gateway(procs: ProcessSet, work: Path, name: str, provider: dict[str, Any],
                  upstream: int, redis: int | None, workers: int, cpu: str | None) -> int:
    port = free_port()
    config: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}", "workers": workers, "timeouts": {"drain_s": 2},
        "access_log": {"enabled": False},
        "providers": [provider],
        "upstreams": [{"name": "up", "targets": [f"http://127.0.0.1:{upstream}"]}],
        "routes": [{"name": "jwt", "match": {"path_prefix": "/jwt"}, "upstream": "up",
                    "auth": {"providers": [provider["name"]]}}],
    }
    if redis is not None:
        config["state"] = {"redis_url": f"redis://127.0.0.1:{redis}/0"}
        config["revocation"] = {"source": "redis"}
    conf = work / f"{name}.yaml"
    conf.write_text(yaml.safe_dump(config, sort_keys=False))
    argv = [str(targets.WARDGATE), "run", "--config", str(conf)]
    m = procs.start(name, pinned(cpu, argv) if cpu else argv)
    wait_started(m)
    return port


# -- part 1: propagation ---------------------------------------------------------------------
class Conn:
    """One kept-alive connection: GET /jwt with a token, the status back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(r, w)

    async def status(self, token: str) -> int:
        self.w.write(f"GET /jwt HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {token}\r\n\r\n"
                     .encode())
        head = await self.r.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.r.readexactly(length)
        return int(head.split(b" ", 2)[1])


async def _watch(conn: Conn, toks: list[str], give_up: float) -> list[float]:
    """When this connection first answered 401 for each token (inf: never, within give_up)."""
    seen = [float("inf")] * len(toks)
    pending = list(range(len(toks)))
    while pending and time.monotonic() < give_up:
        still = []
        for i in pending:
            if await conn.status(toks[i]) == 401:
                seen[i] = time.monotonic()
            else:
                still.append(i)
        pending = still
    return seen


async def propagation(issuer: str, gw_ports: list[int], count: int, batch: int,
                      watchers: int, client: tuple[str, str]) -> list[float]:
    conns = [await Conn.open(p) for p in gw_ports for _ in range(watchers)]
    samples: list[float] = []
    answered.clear()
    async with httpx.AsyncClient(base_url=issuer, timeout=10) as http:
        for start in range(0, count, batch):
            n = min(batch, count - start)
            toks = []
            for _ in range(n):
                r = await http.post("/token", data={"grant_type": "client_credentials"},
                                    auth=client)
                toks.append(r.json()["access_token"])
            for tok in toks:  # accepted everywhere first (and cached by each worker)
                codes = [await c.status(tok) for c in conns]
                if any(code != 200 for code in codes):
                    raise RuntimeError(f"a fresh token was refused: {codes}")

            async def revoke_and_watch(tok: str) -> float:
                t0 = time.monotonic()
                r = await http.post("/revoke", data={"token": tok}, auth=client)
                r.raise_for_status()
                answered.append(time.monotonic() - t0)
                return t0

            give_up = time.monotonic() + 10
            watch = [asyncio.ensure_future(_watch(c, toks, give_up)) for c in conns]
            t0s = await asyncio.gather(*(revoke_and_watch(t) for t in toks))
            seen = await asyncio.gather(*watch)
            for i, t0 in enumerate(t0s):
                samples.append(max(s[i] for s in seen) - t0)
    for c in conns:
        c.w.close()
    return samples


answered: list[float] = []  # the issuer's answer time of each revocation


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


# -- part 2: cost on the jwt-same route --------------------------------------------------------
def fill_stream(redis: int, entries: int, sub: str, iat: int) -> None:
    from wardgate.state.resp import encode

    now = int(time.time())
    events = [{"kind": "jti", "value": f"bench-revoked-{i}", "until": now + 7200, "seq": i + 1}
              for i in range(entries)]
    events += [{"kind": "sub", "value": f"bench-other-{i}", "until": now + 7200,
                "before": now, "seq": entries + 1 + i} for i in range(99)]
    # the token's own subject, revoked before the token was issued: every lookup, no refusal
    events.append({"kind": "sub", "value": sub, "until": now + 7200, "before": iat - 60,
                   "seq": entries + 100})
    payload = b"".join(encode("XADD", STREAM, "*", "s", str(e["seq"]), "e", json.dumps(e))
                       for e in events)
    with socket.create_connection(("127.0.0.1", redis)) as s:
        s.sendall(payload)
        got, want = b"", len(events)
        while got.count(b"\r\n") < want:
            got += s.recv(1 << 16)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000, help="revocations measured (1000)")
    ap.add_argument("--batch", type=int, default=10, help="revocations sent at once (10)")
    ap.add_argument("--watchers", type=int, default=12,
                    help="kept-alive connections watched per gateway (12)")
    ap.add_argument("--entries", type=int, default=10_000, help="jti entries held (10000)")
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--skip", choices=("propagation", "cost"), help="run one part only")
    args = ap.parse_args(argv)
    for tool in ("wrk", "nginx", "redis-server"):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            print(f"{tool} not installed: make bench installs it", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="wardgate-revoke-bench-"))
    procs = ProcessSet(work)
    try:
        upstream = targets.start_upstream(procs, work)
        if args.skip != "propagation":
            _propagation(args, procs, work, upstream.port)
        if args.skip != "cost":
            _cost(args, procs, work, upstream.port)
        print("\n(figures from this machine as it is: on a loaded or shared machine they "
              "are indicative only)")
        return 0
    finally:
        procs.stop_all()


def _propagation(args: argparse.Namespace, procs: ProcessSet, work: Path, upstream: int) -> None:
    from wardgate.config.issuer import load_issuer
    from wardgate.issuer import admin

    redis = start_redis(procs, work)
    issuer, ipath = start_issuer(procs, work, redis)
    secret = asyncio.run(admin.add_client(load_issuer(ipath), "bench-svc",
                                          grant_types=["client_credentials"],
                                          scopes=["bench:read"]))
    provider = {"name": "main", "issuer": issuer, "audiences": ["api"],
                "jwks_uri": issuer + "/.well-known/jwks.json"}
    ports = [start_gateway(procs, work, f"gw{i}", provider, upstream, redis, 2, None)
             for i in range(2)]
    t0 = time.monotonic()
    samples = asyncio.run(propagation(issuer, ports, args.count, args.batch, args.watchers,
                                      ("bench-svc", secret or "")))
    took = time.monotonic() - t0
    lost = sum(1 for s in samples if s == float("inf"))
    ms = [s * 1000 for s in samples if s != float("inf")]
    print(f"\nrevocation propagation, Redis mode: {len(samples)} RFC 7009 revocations in "
          f"rounds of {args.batch}, 2 gateways x 2 workers, {args.watchers} kept-alive "
          f"connections watched per gateway ({took:.1f} s)\n")
    ans = [a * 1000 for a in answered]
    print("| p50 ms | p99 ms | max ms | never refused | issuer answered, p50 / p99 ms | target |")
    print("|---:|---:|---:|---:|---:|---|")
    print(f"| {pct(ms, 50):.0f} | {pct(ms, 99):.0f} | {max(ms):.0f} | {lost} | "
          f"{pct(ans, 50):.0f} / {pct(ans, 99):.0f} | "
          f"p99 < 1000 ms: {'met' if pct(ms, 99) < 1000 and not lost else 'NOT met'} |")


def _cost(args: argparse.Namespace, procs: ProcessSet, work: Path, upstream: int) -> None:
    redis = start_redis(procs, work)
    keys = tokens.load_or_create_key(BENCH / "results" / "cache")
    now = int(time.time())
    token = keys.mint("bench-user", now, 3600)
    fill_stream(redis, args.entries, "bench-user", now)
    provider = {"name": "bench", "issuer": tokens.ISSUER, "audiences": [tokens.AUDIENCE],
                "algorithms": ["RS256"], "jwks_file": str(keys.jwks_path)}
    on = start_gateway(procs, work, "wardgate-revocation", provider, upstream, redis, 1,
                       targets.PROXY_CPU)
    off = start_gateway(procs, work, "wardgate-plain", provider, upstream, None, 1,
                        targets.PROXY_CPU)
    lua = wrkrun.script(work, "report")
    hdr = {"Authorization": f"Bearer {token}"}
    for port in (on, off):  # warm-up, and a check that the token passes on both
        w = wrkrun.run(f"http://127.0.0.1:{port}/jwt", 1, args.connections, lua, hdr)
        if w.errors or not w.requests:
            raise RuntimeError(f"warm-up on {port}: {w.errors} errors")
    res: dict[str, list[tuple[float, int]]] = {"on": [], "off": []}
    for rnd in range(args.rounds):
        for name in (("on", "off") if rnd % 2 == 0 else ("off", "on")):
            port = on if name == "on" else off
            w = wrkrun.run(f"http://127.0.0.1:{port}/jwt", args.duration, args.connections,
                           lua, hdr)
            res[name].append((w.rps, w.p99_us))
    med = {k: (statistics.median(r for r, _ in v), statistics.median(p for _, p in v))
           for k, v in res.items()}
    ratio = med["on"][0] / med["off"][0]
    print(f"\njwt-same with revocation state ({args.entries:,} jti + 100 subject entries) vs "
          f"without, {args.rounds} interleaved rounds of {args.duration:.0f} s, wrk -t1 "
          f"-c{args.connections}, one worker each, medians\n")
    print("| gateway | req/s | p99 us | vs without | target |")
    print("|---|---:|---:|---:|---|")
    print(f"| without revocation | {med['off'][0]:,.0f} | {med['off'][1]:,.0f} | 1.00x | |")
    print(f"| with revocation state | {med['on'][0]:,.0f} | {med['on'][1]:,.0f} | "
          f"{ratio:.2f}x | >= 0.97x: {'met' if ratio >= 0.97 else 'NOT met'} |")


if __name__ == "__main__":
    sys.exit(main())
