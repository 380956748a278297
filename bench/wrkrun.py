"""Run wrk (pinned to LOAD_CPU) and read its exact results from a Lua done() hook."""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from procs import pinned
from targets import LOAD_CPU

LUA = Path(__file__).resolve().parent / "lua"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_us: int
    bytes: int
    err_connect: int
    err_read: int
    err_write: int
    err_status: int
    err_timeout: int
    lat_mean_us: float
    lat_max_us: int
    p50_us: int
    p75_us: int
    p90_us: int
    p99_us: int
    p999_us: int

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    @property
    def errors(self) -> int:
        return (self.err_connect + self.err_read + self.err_write + self.err_status
                + self.err_timeout)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "rps": round(self.rps, 1)}


def script(workdir: Path, name: str) -> Path:
    """report.lua (the done() hook) plus, optionally, a scenario script, as one file."""
    out = workdir / f"wrk-{name}.lua"
    parts = [(LUA / "report.lua").read_text()]
    if name != "report":
        parts.append((LUA / f"{name}.lua").read_text())
    out.write_text("\n".join(parts))
    return out


def run(url: str, duration_s: float, connections: int, lua: Path,
        headers: dict[str, str] | None = None, args: list[str] | None = None,
        timeout_s: str = "5s") -> WrkResult:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--latency",
            f"--timeout={timeout_s}", "-s", str(lua)]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    if args:
        argv += ["--", *args]
    # wrk is short-lived and in the foreground; on Ctrl-C it gets the signal with us.
    done = subprocess.run(pinned(LOAD_CPU, argv), capture_output=True, text=True,
                          timeout=duration_s + 120)
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return WrkResult(**json.loads(line[len("WRKJSON "):]))
    raise RuntimeError(f"wrk failed (exit {done.returncode}): {done.stderr.strip()}\n"
                       f"{done.stdout[-2000:]}")


def start(url: str, connections: int, lua: Path) -> subprocess.Popen[str]:
    """wrk in the background for up to an hour; stop it with stop()."""
    argv = ["wrk", "-t1", f"-c{connections}", "-d3600s", "--latency", "-s", str(lua), url]
    return subprocess.Popen(pinned(LOAD_CPU, argv), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen[str]) -> WrkResult | None:
    """SIGINT makes wrk stop and print its summary (and our done() line)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    for line in out.splitlines():
        if line.startswith("WRKJSON "):
            return WrkResult(**json.loads(line[len("WRKJSON "):]))
    return None
