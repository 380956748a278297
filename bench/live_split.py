"""Where a live worker's CPU goes, step by step, in µs per request (`make bench`).

Starts make bench's wardgate (workers: 1, pinned to core 1) in front of the nginx upstream,
loads one scenario with `wrk -t1 -c64` (jwt-distinct: every request a new RS256 token from
make bench's pool; also jwt-forged, jwt-same, plain; dpop: bench/dpop_bench.py's route, one
bound token and a fresh ES256 proof per request), samples the worker with py-spy while the
load runs, and reads the worker's CPU time from /proc over the same interval. Each sample's
stack is given to the first step (in the order below) that one of its frames belongs to; a
step's share of the samples times the CPU per request is its µs per request. py-spy counts
only samples where the worker is running, so time in a system call (the socket writes and
reads) falls to the Python frame that made it: "respond (socket writes)" is mostly kernel.

    .venv/bin/python bench/live_split.py [--scenario jwt-distinct] [--duration 12] [--rate 250]

The worker runs the data plane from its Python source (WARDGATE_PURE_PYTHON=1, unless the
environment sets it): py-spy sees no Python frames inside the modules mypyc compiled
(src/wardgate/_native.py), so a split of the compiled build would put nearly everything under
"event loop, other". The split is the source version's; bench/run.py measures the build.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import targets
import tokens
import wrkrun
from procs import ProcessSet

CACHE = Path(__file__).resolve().parent / "results" / "cache"

# (step, frames that mark it): the first match from the top of this list wins, so the inner
# steps come first. Names are py-spy's "function (file:line)" heads.
STEPS: list[tuple[str, tuple[str, ...]]] = [
    ("DPoP proof signature (P-256 verify, OpenSSL)", ("_ec_check.<locals>.check",)),
    ("DPoP proof parse and checks (claims, ath, jkt, replay)",
     ("ProofVerifier.verify", "DpopContext.check")),
    ("signature (RSA verify, OpenSSL)", ("_rsa_check.<locals>.check",)),
    ("claims checks", ("claims_ok", "check_claims")),
    ("identity build", ("ProviderVerifier._identity",)),
    ("token parse (split, base64url, JSON)", ("TokenVerifier.parse",)),
    ("error answer (401 rendering)", ("request_failed", "render")),
    ("rest of the JWT step (extract, cache, policy, forward)",
     ("RouteAuth.check", "Pipeline._auth_forward", "RouteAuth.forward")),
    ("route match", ("Router.match",)),
    ("upstream request (rewrite, pick, write)", ("Pipeline._forward", "Exchange.start")),
    ("upstream response (parse, relay)", ("UpstreamConnection.data_received",)),
    ("respond (socket writes)", ("WriteBatch.flush", "Output.flush_output")),
    ("request parse (httptools, head checks)", ("ClientProtocol.data_received",)),
    ("metrics, log, timers", ("GatewayMetrics", "AccessLog", "sweep")),
]
OTHER = "event loop, socket reads, other"


def classify(stack: str) -> str:
    for step, marks in STEPS:
        if any(m in stack for m in marks):
            return step
    return OTHER


def worker_of(pid: int) -> psutil.Process:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        kids = psutil.Process(pid).children()
        if kids:
            return kids[0]
        time.sleep(0.1)
    raise SystemExit("the gateway started no worker")


def _jwt_or_plain(args: argparse.Namespace, procs: ProcessSet, workdir: Path,
                  upstream_port: int, keys: tokens.KeyMaterial) -> tuple[psutil.Process, Any]:
    plain, jwt = targets.start_wardgate(procs, workdir, upstream_port, keys)
    target = plain if args.scenario == "plain" else jwt
    assert target.managed is not None
    url = f"http://127.0.0.1:{target.port}{target.path}"
    if args.scenario in ("jwt-distinct", "jwt-forged"):
        pool = tokens.token_file(keys, CACHE, args.tokens)
        if args.scenario == "jwt-forged":
            pool = tokens.forged_file(pool)
        lua = wrkrun.script(workdir, "tokens")
        run = lambda d: wrkrun.run(url, d, 64, lua, args=[str(pool), "0"])  # noqa: E731
    else:
        lua = wrkrun.script(workdir, "report")
        headers = ({"Authorization": f"Bearer {keys.mint('user-repeated', int(time.time()))}"}
                   if args.scenario == "jwt-same" else None)
        run = lambda d: wrkrun.run(url, d, 64, lua, headers=headers)  # noqa: E731
    return worker_of(target.managed.pid), run


def _dpop(procs: ProcessSet, workdir: Path, upstream_port: int, keys: tokens.KeyMaterial,
          seconds: float) -> tuple[int, Any]:
    """dpop_bench's gateway (one worker on the proxy core) and a wrk runner that sends a new
    proof on every request, each run past the proofs already used."""
    import dpop_bench
    import yaml
    from procs import free_port, pinned, wait_for_port

    port = free_port()
    pool = int(dpop_bench.CALIBRATED_MAX_RPS * seconds * 1.25)
    conf = workdir / "wardgate-dpop.yaml"
    conf.write_text(yaml.safe_dump(dpop_bench.gateway_config(keys, port, upstream_port, 4 * pool),
                                   sort_keys=False))
    wg = procs.start("wardgate-dpop", pinned(targets.PROXY_CPU, [
        str(targets.WARDGATE), "run", "--config", str(conf)]))
    wait_for_port(port, wg, timeout=30)
    client = dpop_bench.Client()
    bound = dpop_bench.bound_token(keys, client.jkt)
    url = f"http://127.0.0.1:{port}{dpop_bench.DPOP_PATH}"
    proofs = workdir / "proofs.txt"
    now = int(time.time())
    with proofs.open("w") as fh:
        for _ in range(pool):
            fh.write(client.proof("GET", url, dpop_bench.ath_of(bound), now) + "\n")
    lua = wrkrun.script(workdir, "dpop")
    used = [0]

    def run(d: float) -> wrkrun.WrkResult:
        res = wrkrun.run(url, d, 64, lua, args=[str(proofs), bound, str(used[0])])
        used[0] += res.requests + 128
        if res.errors:
            raise SystemExit(f"the DPoP route answered {res.errors} errors (proof pool used up?)")
        return res
    return wg.pid, run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="jwt-distinct",
                    choices=["plain", "jwt-same", "jwt-distinct", "jwt-forged", "dpop"])
    ap.add_argument("--duration", type=float, default=12.0, help="seconds sampled")
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--tokens", type=int, default=100_000)
    args = ap.parse_args(argv)
    os.environ.setdefault("WARDGATE_PURE_PYTHON", "1")  # see the module docstring
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("py-spy not found (it comes with the dev extra)")
    workdir = Path(tempfile.mkdtemp(prefix="wardgate-split-"))
    procs = ProcessSet(workdir)
    try:
        keys = tokens.load_or_create_key(CACHE)
        upstream = targets.start_upstream(procs, workdir)
        if args.scenario == "dpop":
            pid, run = _dpop(procs, workdir, upstream.port, keys, 3 + args.duration + 4)
            worker = worker_of(pid)
        else:
            worker, run = _jwt_or_plain(args, procs, workdir, upstream.port, keys)
        run(3)  # warm-up
        raw = workdir / "spy.txt"
        wrk_s = args.duration + 4
        cpu0 = sum(worker.cpu_times()[:2])
        spy_proc = subprocess.Popen([spy, "record", "-p", str(worker.pid), "-d",
                                     str(int(args.duration)), "-r", str(args.rate), "-f", "raw",
                                     "-o", str(raw), "--nonblocking"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = run(wrk_s)
        cpu = sum(worker.cpu_times()[:2]) - cpu0
        spy_proc.wait(timeout=60)
        # py-spy's own sampling costs the worker a little (run with a lower --rate to check)
        us_per_req = cpu / result.requests * 1e6 if result.requests else 0.0
        shares: collections.Counter[str] = collections.Counter()
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack:
                shares[classify(stack)] += int(count)
        total = sum(shares.values()) or 1
        print(f"# live split, {args.scenario} (data plane from source): {result.rps:,.0f} req/s, "
              f"{us_per_req:.1f} µs of worker CPU per request, {total} samples")
        print(f"{'step':58} {'share':>6} {'µs/req':>7}")
        for step, _ in [*STEPS, (OTHER, ())]:
            n = shares.get(step, 0)
            if n:
                print(f"{step:58} {100 * n / total:5.1f}% {us_per_req * n / total:7.1f}")
    finally:
        procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
