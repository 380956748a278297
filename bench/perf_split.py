"""Where the compiled worker's CPU goes, in µs per request, from perf (`make bench`).

bench/live_split.py samples with py-spy, which sees no frames inside the modules mypyc
compiled, so it runs the data plane from source. This one runs the compiled build: it starts
make bench's wardgate (one worker, pinned to the proxy core) in front of the nginx upstream,
loads one scenario with `wrk -t1 -c64`, records the worker with `perf record --call-graph
dwarf` (frame pointers do not unwind through the distribution's CPython), reads the worker's
CPU time from /proc over the same interval, and gives each sample to the first step below
that one of its stack's frames belongs to.

    .venv/bin/python bench/perf_split.py [--scenario jwt-forged] [--duration 6] [--rate 300]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import live_split
import targets
import tokens
from procs import ProcessSet

# (step, marks): the first step with a mark in any frame of a sample's stack wins, so the
# inner steps come first. Marks are perf's symbol names (mypyc's are CPyDef_<module>___...).
STEPS: list[tuple[str, tuple[str, ...]]] = [
    ("RSA public operation (cryptography, OpenSSL)", ("RsaPublicKey", "cryptography_rust")),
    ("Python the finish closure calls (denial ring)", ("PyObject_CallFunctionObjArgs",)),
    ("log and metrics closure (C)", ("fin_vectorcall",)),
    ("error answer (request_failed: render, send)", ("request_failed",)),
    ("exceptions (tracebacks, catching, freeing)",
     ("CPy_AddTraceback", "CPy_CatchError", "PyErr_SetExcInfo", "_PyErr_", "PyException")),
    ("b64token re-scan", ("check_syntax",)),
    ("token parse (split, base64url, JSON)", ("TokenVerifier___parse",)),
    ("claims checks", ("claims",)),
    ("rest of the verification", ("ProviderVerifier___verify",)),
    ("rest of the auth step", ("RouteAuth",)),
    ("respond (socket writes)", ("WriteBatch___flush",)),
    ("upstream (request, response, relay)", ("proxy___", "connection___", "Exchange")),
    ("request parse (llhttp, head checks)",
     ("on_headers_complete", "llhttp", "_feed", "parser.cpython")),
    ("rest of the pipeline", ("Pipeline",)),
]
KERNEL = "kernel, other (socket reads, epoll)"
OTHER = "other"


def samples(script_out: str) -> Iterator[list[str]]:
    """`perf script -F ip,sym,dso` output: one frame per line, a blank line between samples."""
    frames: list[str] = []
    for line in script_out.splitlines():
        line = line.strip()
        if not line:
            if frames:
                yield frames
            frames = []
        else:
            frames.append(line)
    if frames:
        yield frames


def classify(frames: list[str]) -> str:
    stack = "\n".join(frames)
    for step, marks in STEPS:
        if any(m in stack for m in marks):
            return step
    return KERNEL if "kernel" in frames[0] else OTHER


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="jwt-forged",
                    choices=["plain", "jwt-same", "jwt-distinct", "jwt-forged"])
    ap.add_argument("--duration", type=float, default=6.0, help="seconds recorded")
    ap.add_argument("--rate", type=int, default=300, help="perf samples per second")
    ap.add_argument("--tokens", type=int, default=100_000)
    args = ap.parse_args(argv)
    if os.environ.get("WARDGATE_PURE_PYTHON"):
        raise SystemExit("perf_split measures the compiled build: unset WARDGATE_PURE_PYTHON")
    perf = shutil.which("perf")
    if perf is None:
        raise SystemExit("perf not found (Debian: apt-get install linux-perf)")
    workdir = Path(tempfile.mkdtemp(prefix="wardgate-perf-"))
    procs = ProcessSet(workdir)
    try:
        keys = tokens.load_or_create_key(live_split.CACHE)
        upstream = targets.start_upstream(procs, workdir)
        worker, run = live_split._jwt_or_plain(args, procs, workdir, upstream.port, keys)
        run(3)  # warm-up
        data = workdir / "perf.data"
        cpu0 = sum(worker.cpu_times()[:2])
        rec = subprocess.Popen([perf, "record", "-F", str(args.rate), "--call-graph",
                                "dwarf,16384", "-p", str(worker.pid), "-o", str(data), "--",
                                "sleep", str(args.duration)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = run(args.duration + 2)
        cpu = sum(worker.cpu_times()[:2]) - cpu0
        rec.wait(timeout=120)
        out = subprocess.run([perf, "script", "-i", str(data), "-F", "ip,sym,dso"],
                             capture_output=True, text=True, errors="replace",
                             timeout=600).stdout
        shares = collections.Counter(classify(frames) for frames in samples(out))
        total = sum(shares.values()) or 1
        us_per_req = cpu / result.requests * 1e6 if result.requests else 0.0
        print(f"# perf split, {args.scenario} (compiled build): {result.rps:,.0f} req/s, "
              f"{us_per_req:.1f} µs of worker CPU per request, {total} samples")
        print(f"{'step':52} {'share':>6} {'µs/req':>7}")
        for step in [s for s, _ in STEPS] + [KERNEL, OTHER]:
            n = shares.get(step, 0)
            if n:
                print(f"{step:52} {100 * n / total:5.1f}% {us_per_req * n / total:7.1f}")
    finally:
        procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
