"""Fixtures: one shared issuer over real HTTP, fresh issuers on demand, a real PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.issuer.support import IssuerProcess, base_config, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IssuerProcess]:
    workdir = tmp_path_factory.mktemp("issuer")
    proc = IssuerProcess(base_config(workdir), workdir)
    proc.add_user("alice", "correct horse", ["reader"])
    proc.add_user("bob", "battery staple", ["admin"])
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def make_issuer(tmp_path: Path) -> Iterator[Callable[..., IssuerProcess]]:
    started: list[IssuerProcess] = []

    def make(start: bool = True, **overrides: Any) -> IssuerProcess:
        d = tmp_path / f"iss{len(started)}"
        d.mkdir()
        p = IssuerProcess(base_config(d, **overrides), d)
        started.append(p)
        return p.start() if start else p

    yield make
    for p in started:
        p.stop()


def _as_postgres(*cmd: str) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return list(cmd)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL 15 on 127.0.0.1 (trust auth), stopped by PID at the end."""
    if not (PG_BIN / "postgres").exists():
        pytest.skip("PostgreSQL binaries not installed (make sysdeps)")
    base = Path(tempfile.mkdtemp(prefix="wg-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    subprocess.run(_as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust",
                                "-U", "postgres", "--no-sync"),
                   check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen(_as_postgres(
        str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
        "-k", str(base), "-c", "fsync=off", "-c", "full_page_writes=off"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            r = subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                               capture_output=True)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("postgres did not start")
            time.sleep(0.2)
        subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                        "-U", "postgres", "wardgate"], check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/wardgate"
    finally:
        # Fast shutdown of the postmaster we started (its PID from postmaster.pid), then
        # the runuser wrapper exits with it.
        pidfile = data / "postmaster.pid"
        with contextlib.suppress(ProcessLookupError, FileNotFoundError, ValueError):
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGINT)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        shutil.rmtree(base, ignore_errors=True)
