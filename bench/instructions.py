"""Instructions per request of the in-process data plane, counted by valgrind (`make bench`).

Runs `bench/hotpath.py` under `valgrind --tool=callgrind` twice per variant, with a short and
a long run, and prints the difference divided by the extra requests: start-up and warm-up
cancel out, and what is left is the instructions one request costs (wardgate's path plus the
httptools reference that hotpath.py also runs, the same in every variant). Instruction
counts do not depend on what else the machine is doing, so a feature's cost can be read
from the difference between two variants even on a busy machine; they are not seconds
(cache misses and the kernel are not in them: docs/benchmarks.md relates the two).

    .venv/bin/python bench/instructions.py [--variants plain,plain-metrics,...] [--short 640]
                                           [--long 6400]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
VARIANTS: dict[str, list[str]] = {
    "plain": ["--route", "plain"],
    "plain-metrics": ["--route", "plain", "--metrics"],
    "plain-rate-limit": ["--route", "plain", "--rate-limit"],
    "plain-metrics-rate-limit": ["--route", "plain", "--metrics", "--rate-limit"],
    "jwt": ["--route", "jwt"],
    "jwt-distinct": ["--route", "jwt-distinct"],
    "jwt-metrics": ["--route", "jwt", "--metrics"],
    "jwt-metrics-detection": ["--route", "jwt", "--metrics", "--detection"],
}
DEFAULT = "plain,plain-metrics,plain-rate-limit,jwt"


def count(args: list[str], requests: int) -> int:
    """Total instructions of one hotpath.py run."""
    with tempfile.TemporaryDirectory(prefix="wardgate-cg-") as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, str(BENCH / "hotpath.py"), "--repeat", "1",
                        "--requests", str(requests), *args],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       cwd=BENCH.parent)
        with open(out, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"(?:summary|totals):\s+(\d+)", line)
                if m:
                    return int(m.group(1))
    raise RuntimeError("callgrind wrote no totals")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=DEFAULT,
                    help=f"comma-separated, from {','.join(VARIANTS)}")
    ap.add_argument("--short", type=int, default=640, help="requests of the short run")
    ap.add_argument("--long", type=int, default=6400, help="requests of the long run")
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found (apt-get install valgrind)")
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants: {', '.join(unknown)}")
    extra = args.long - args.short
    base: int | None = None
    print(f"{'variant':28} {'instructions/request':>21} {'vs first':>9}")
    for name in names:
        per = (count(VARIANTS[name], args.long) - count(VARIANTS[name], args.short)) // extra
        base = per if base is None else base
        print(f"{name:28} {per:21,d} {per - base:+9,d}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
