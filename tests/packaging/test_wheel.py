"""Installed as a user would: the wheel built from this checkout, into a fresh venv without
the dev extra, gives a `wardgate` whose every subcommand starts, and a gateway that serves."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.gateway import free_port
from tests.support.upstream import Upstream
from wardgate import _native

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and the sdist built from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", str(out),
                    str(REPO)], check=True, capture_output=True, timeout=300)
    assert list(out.glob("wardgate-*.whl")) and list(out.glob("wardgate-*.tar.gz"))
    return out


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, dist: Path) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("wheel")
    wheels = list(dist.glob("wardgate-*.whl"))
    venv = tmp / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheels[0])], check=True,
                   capture_output=True, timeout=600)
    yield venv


def compiled(venv: Path) -> tuple[str, str]:
    """(the metrics closure in C?, the data plane compiled by mypyc?) in that install."""
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "from wardgate.observe import http; from wardgate import _native; "
                          "print(http.ACCELERATED, _native.running_compiled())"],
                         capture_output=True, text=True, check=True, cwd="/",
                         env={k: v for k, v in os.environ.items() if k != "WARDGATE_PURE_PYTHON"})
    c, native = out.stdout.split()
    return c, native


def test_the_wheel_carries_the_compiled_parts(fresh: Path, dist: Path) -> None:
    assert compiled(fresh) == ("True", "True")
    (wheel,) = dist.glob("wardgate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in _native.COMPILED:  # each module as built, and its source beside it
        stem = module.replace(".", "/")
        assert any(n.startswith(stem + ".cpython-") and n.endswith(".so") for n in names), module
        assert stem + ".py" in names


def test_without_a_compiler_the_install_falls_back_to_python(tmp_path: Path, dist: Path) -> None:
    """A machine without a C compiler (or Python's headers) still installs from the sdist:
    the optional extensions are skipped; the data plane runs from its source and the Python
    metrics closure counts (observe/http.py); the gateway serves."""
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {**os.environ, "CC": "false", "LDSHARED": "false"}
    (sdist,) = dist.glob("wardgate-*.tar.gz")
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(sdist)],
                       capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert compiled(venv) == ("False", "False")
    assert wg(venv, "run", "--help").returncode == 0
    serves(venv, tmp_path)


def wg(venv: Path, *args: str, cwd: Path | None = None, stdin: str | None = None
       ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(venv / "bin" / "wardgate"), *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=env, input=stdin)


def test_the_bare_install_has_no_dev_packages(fresh: Path) -> None:
    out = subprocess.run([str(fresh / "bin" / "python"), "-c",
                          "import importlib.util as u; print([m for m in ('pytest', 'hypothesis', "
                          "'trustme', 'jwt') if u.find_spec(m)])"],
                         capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("cmd", [[], ["run"], ["issuer"], ["demo"], ["check-config"], ["users"],
                                 ["clients"], ["keys"], ["token", "inspect"],
                                 ["status"]])
def test_every_subcommand_starts(fresh: Path, cmd: list[str]) -> None:
    r = wg(fresh, *cmd, "--help")
    assert r.returncode == 0, r.stderr
    assert "usage: wardgate" in r.stdout and "Traceback" not in r.stderr


def test_the_dashboard_files_are_in_the_wheel(fresh: Path) -> None:
    out = subprocess.run([str(fresh / "bin" / "python"), "-c",
                          "from importlib.resources import files; d = files('wardgate.admin') / "
                          "'static'; print(sorted(p.name for p in d.iterdir() if p.is_file()))"],
                         capture_output=True, text=True, check=True, cwd="/")
    names = out.stdout.strip()
    for name in ("dashboard.html", "dashboard.js", "dashboard.css", "login.html", "favicon.svg"):
        assert name in names, names


def test_python_dash_m(fresh: Path) -> None:
    r = subprocess.run([str(fresh / "bin" / "python"), "-m", "wardgate", "--help"],
                       capture_output=True, text=True, cwd="/")
    assert r.returncode == 0 and "usage: wardgate" in r.stdout


def test_check_config_and_the_issuer_side(fresh: Path, tmp_path: Path) -> None:
    r = wg(fresh, "check-config", str(REPO / "examples" / "gateway.yaml"))
    assert r.returncode == 0 and ": OK (" in r.stdout, r.stderr
    issuer = tmp_path / "issuer.yaml"
    issuer.write_text((REPO / "examples" / "issuer.yaml").read_text())
    # the async database engine (SQLAlchemy's asyncio needs greenlet): what crashed before
    r = wg(fresh, "users", "add", "carol", "--role", "user", "--password-stdin", "--config",
           str(issuer), cwd=tmp_path, stdin="a long enough password 123\n")
    assert r.returncode == 0, r.stderr
    r = wg(fresh, "users", "list", "--config", str(issuer), cwd=tmp_path)
    assert r.returncode == 0 and "carol" in r.stdout, r.stderr


def test_a_short_wardgate_run_serves(fresh: Path, tmp_path: Path) -> None:
    serves(fresh, tmp_path)
    mods = subprocess.run(
        [str(fresh / "bin" / "python"), "-c",
         "import sys, wardgate.cli as c; c.build_parser(); "
         "print([m for m in ('fastapi', 'sqlalchemy', 'uvicorn') if m in sys.modules])"],
        capture_output=True, text=True, check=True, cwd="/")
    assert mods.stdout.strip() == "[]"  # the gateway's CLI never loads the issuer's stack


def serves(venv: Path, tmp_path: Path) -> None:
    """`wardgate run` from that install proxies requests, then stops cleanly on SIGTERM."""
    up = Upstream("a").start()
    port = free_port()
    cfg = {"listen": f"127.0.0.1:{port}", "upstreams": [{"name": "up", "targets": [up.url]}],
           "routes": [{"name": "all", "upstream": "up", "auth": "none"}]}
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([str(venv / "bin" / "wardgate"), "run", "--config", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline and status is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/echo")
                first = conn.getresponse()
                first.read()
                status = first.status
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        assert status == 200
        for i in range(50):  # keep-alive, pooled upstream connection: the repeated path
            conn.request("GET", f"/echo?n={i}", headers={"X-Forwarded-For": "6.6.6.6"})
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200 and f"n={i}".encode() in body
            assert b"6.6.6.6" not in body  # spoofed forwarding header stripped
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(20) == 0
        up.stop()
