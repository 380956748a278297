"""`wardgate demo` as a user runs it: a subprocess, the printed steps performed over HTTP (and
the printed shell lines run in bash), then SIGINT, and no process left behind.

Ports are free ones passed as flags (the defaults are DESIGN.md's, which a developer's own demo
may be using).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.dpop import DpopKey

PARTS = ("issuer", "gateway", "admin", "orders", "reports")
READY_LINE = "Press Ctrl-C to stop everything."


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Demo:
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    output: str
    password: str
    descendants: list[int]

    def url(self, part: str) -> str:
        return f"http://127.0.0.1:{self.ports[part]}"


def read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float) -> str:
    """Raw reads from the pipe: select() cannot see data already in a buffered reader."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    out = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in out:
        if time.monotonic() > deadline:
            raise TimeoutError(f"demo not ready after {timeout}s:\n{out.decode()}")
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"demo exited ({proc.wait()}):\n{out.decode()}{err}")
            out += chunk
    return out.decode()


def demo_argv(ports: dict[str, int]) -> list[str]:
    argv = [sys.executable, "-m", "wardgate", "demo"]
    for part, port in ports.items():
        argv += [f"--{part}-port", str(port)]
    return argv


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    ports = dict(zip(PARTS, free_ports(len(PARTS)), strict=True))
    env = {**os.environ, "WARDGATE_DEMO_PASSWORD": "e2e-Pa55word", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(demo_argv(ports), cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        output = read_until(proc, READY_LINE, timeout=40)
        password = re.search(r"^  password  (\S+)", output, re.M)
        assert password is not None, output
        kids = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        yield Demo(proc, ports, output, password.group(1), kids)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the test's own session only
                proc.wait(5)


def login(client: httpx.Client, demo: Demo, user: str) -> dict[str, str]:
    r = client.post(f"{demo.url('issuer')}/login",
                    json={"username": user, "password": demo.password})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    return body


def printed_shell_lines(output: str) -> list[str]:
    return [line[5:] for line in output.splitlines()
            if line.startswith("     ") and not line.startswith("     expect:")]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_demo_end_to_end(demo: Demo, tmp_path: Path) -> None:
    started = time.monotonic()
    gw, iss = demo.url("gateway"), demo.url("issuer")
    assert demo.password == "e2e-Pa55word"
    assert f"gateway   {gw}" in demo.output and "generated signing key" in demo.output
    # issuer, two services, gateway supervisor and its worker
    assert len(demo.descendants) >= 5
    state = tmp_path / ".wardgate"
    assert (state / "issuer.db").is_file() and any((state / "keys").iterdir())

    with httpx.Client(timeout=10, trust_env=False) as client:
        # 1. login
        alice = login(client, demo, "alice")
        auth = {"Authorization": f"Bearer {alice['access_token']}"}
        # 2. a call that succeeds; the orders service verified the token itself
        r = client.get(f"{gw}/orders", headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["verified_by"] == "zero_trust"
        assert r.json()["caller"]["roles"] == ["admin"]
        # 3. 401: no token, then a forged one
        r = client.get(f"{gw}/orders")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="orders"'
        forged = alice["access_token"][:-5] + "xxxxx"
        r = client.get(f"{gw}/orders", headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        gateway_challenge = r.headers["www-authenticate"]
        # zero trust: the orders service refuses a direct call by itself, with the same answers
        r = client.get(f"{demo.url('orders')}/orders")
        assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="orders"'
        r = client.get(f"{demo.url('orders')}/orders",
                       headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == gateway_challenge
        # 4. 403 for bob on /reports (role), 200 for alice (trusted gateway headers)
        bob = login(client, demo, "bob")
        bob_auth = {"Authorization": f"Bearer {bob['access_token']}"}
        r = client.get(f"{gw}/reports", headers=bob_auth)
        assert r.status_code == 403
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
        r = client.get(f"{gw}/reports", headers=auth)
        assert r.status_code == 200 and r.json()["verified_by"] == "trust_gateway"
        # identity headers sent by a client never reach the service: the gateway's win
        spoofed = {**auth, "X-User-Id": "999", "X-User-Roles": "admin,root"}
        r = client.get(f"{gw}/reports", headers=spoofed)
        assert r.json()["caller"]["sub"] == "1" and r.json()["caller"]["roles"] == ["admin"]
        # bob may read orders but not create them: 403 naming the missing scope
        assert client.get(f"{gw}/orders", headers=bob_auth).status_code == 200
        r = client.post(f"{gw}/orders", headers=bob_auth, json={"item": "tea"})
        assert r.status_code == 403 and 'scope="orders:write"' in r.headers["www-authenticate"]
        r = client.post(f"{gw}/orders", headers=auth, json={"item": "tea"})
        assert r.status_code == 201 and r.json()["created"]["item"] == "tea"
        # 5. refresh
        r = client.post(f"{iss}/token", data={"grant_type": "refresh_token",
                                              "refresh_token": alice["refresh_token"]})
        assert r.status_code == 200, r.text
        fresh = r.json()
        assert fresh["refresh_token"] != alice["refresh_token"]
        r = client.get(f"{gw}/orders",
                       headers={"Authorization": f"Bearer {fresh['access_token']}"})
        assert r.status_code == 200
        # 6. revocation
        r = client.post(f"{iss}/revoke", data={"client_id": "wardgate-login",
                                               "token": fresh["refresh_token"]})
        assert r.status_code == 200
        r = client.post(f"{iss}/token", data={"grant_type": "refresh_token",
                                              "refresh_token": fresh["refresh_token"]})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        # the revoked refresh token's access token is refused by the gateway within 1 s
        # (the demo gateway polls the issuer's revocation feed)
        revoked_at = time.monotonic()
        fresh_auth = {"Authorization": f"Bearer {fresh['access_token']}"}
        while client.get(f"{gw}/orders", headers=fresh_auth).status_code != 401:
            assert time.monotonic() - revoked_at < 1.0, "revocation not applied within 1 s"
            time.sleep(0.02)

        # 7-9. DPoP: the demo-dpop client (its secret in the state directory) must send a
        # proof; its token is bound, and the `dpop` route takes it only with a fresh proof
        key = DpopKey("ES256")
        secret = (state / "dpop-client-secret").read_text().strip()
        assert (state / "dpop-client-secret").stat().st_mode & 0o777 == 0o600
        r = client.post(f"{iss}/token", data={"grant_type": "client_credentials"},
                        auth=("demo-dpop", secret))
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
        r = client.post(f"{iss}/token", data={"grant_type": "client_credentials"},
                        auth=("demo-dpop", secret),
                        headers={"DPoP": key.proof("POST", f"{iss}/token")})
        assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
        bound = r.json()["access_token"]
        r = client.get(f"{gw}/dpop", headers={
            "Authorization": f"DPoP {bound}", "DPoP": key.proof("GET", f"{gw}/dpop",
                                                                token=bound)})
        assert r.status_code == 200, r.text
        assert r.json()["caller"]["sub"] == "demo-dpop"
        r = client.get(f"{gw}/dpop", headers={"Authorization": f"Bearer {bound}"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("DPoP ")
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        r = client.get(f"{gw}/dpop", headers={"Authorization": f"DPoP {bound}"})
        assert r.status_code == 401 and 'error="invalid_dpop_proof"' in \
            r.headers["www-authenticate"]
        # an ordinary (unbound) user token is refused on the DPoP-only route
        r = client.get(f"{gw}/dpop", headers=auth)
        assert r.status_code == 401

    # The admin listener: the printed token (0600 file) opens the API and the dashboard.
    admin = demo.url("admin")
    token = re.search(r"^  admin token  (\S+)", demo.output, re.M)
    assert token is not None and f"  dashboard {admin}/" in demo.output, demo.output
    token_file = state / "admin-token"
    assert token_file.read_text().strip() == token.group(1)
    assert token_file.stat().st_mode & 0o777 == 0o600
    with httpx.Client(timeout=10, trust_env=False) as client:
        assert client.get(f"{admin}/admin/summary").status_code == 401
        r = client.get(f"{admin}/admin/summary",
                       headers={"Authorization": f"Bearer {token.group(1)}"})
        assert r.status_code == 200 and r.json()["routes"] == ["orders", "reports", "dpop"]
        assert r.json()["requests"] > 0
        r = client.post(f"{admin}/login", data={"token": token.group(1)})
        assert r.status_code == 303 and "wardgate_admin" in r.headers["set-cookie"]
    status_line = re.search(r"^  status    (.+)$", demo.output, re.M)
    assert status_line is not None
    run = subprocess.run(["bash", "-c", status_line.group(1)], capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "orders" in run.stdout and "up       http://127.0.0.1" in run.stdout

    # The printed commands themselves, pasted into bash in order.
    if shutil.which("curl") and shutil.which("python3"):
        script = "set -u\n" + "\n".join(printed_shell_lines(demo.output)) + "\n"
        run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
        statuses = re.findall(r"^HTTP/1\.1 (\d{3})", run.stdout, re.M)
        # orders 200; no token 401; forged 401; bob 403; alice 200; revoke 200; refresh 400;
        # DPoP (proofs from `wardgate dpop proof`): with a proof 200, as Bearer 401
        assert statuses == ["200", "401", "401", "403", "200", "200", "400", "200", "401"], \
            run.stdout + run.stderr
        assert '"invalid_grant"' in run.stdout
        assert '"token_type":"DPoP"' in run.stdout.replace(" ", "")
        assert (state / "dpop-key.json").stat().st_mode & 0o777 == 0o600

    # Ctrl-C: everything stops, nothing is left
    demo.proc.send_signal(signal.SIGINT)
    assert demo.proc.wait(30) == 0
    tail = demo.proc.stdout.read().decode() if demo.proc.stdout else ""
    assert "stopped." in tail
    left = [pid for pid in demo.descendants if not gone(pid)]
    assert left == [], [psutil.Process(p).cmdline() for p in left]
    for part in ("issuer", "gateway", "orders", "reports"):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", demo.ports[part]))  # free again
    assert time.monotonic() - started < 45


def test_taken_port_is_named_and_nothing_starts(tmp_path: Path) -> None:
    ports = dict(zip(PARTS, free_ports(len(PARTS)), strict=True))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports["gateway"]))
        busy.listen(1)
        run = subprocess.run(demo_argv(ports), cwd=tmp_path, capture_output=True, text=True,
                             timeout=30)
    assert run.returncode == 1
    assert f"port {ports['gateway']} (gateway)" in run.stderr
    assert "nothing was started" in run.stderr
    assert not (tmp_path / ".wardgate").exists()


def _stop_and_check(proc: subprocess.Popen[bytes], kids: list[int], sig: int) -> None:
    proc.send_signal(sig)
    assert proc.wait(30) == 0
    left = [pid for pid in kids if not gone(pid)]
    assert left == []


def test_sigterm_stops_everything(demo: Demo) -> None:
    _stop_and_check(demo.proc, demo.descendants, signal.SIGTERM)


def test_ctrl_c_while_starting_leaves_nothing(tmp_path: Path) -> None:
    ports = dict(zip(PARTS, free_ports(len(PARTS)), strict=True))
    proc = subprocess.Popen(demo_argv(ports), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        read_until(proc, "starting orders", timeout=30)  # the issuer runs, the rest does not
        kids = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        assert kids
        _stop_and_check(proc, kids, signal.SIGINT)
        assert READY_LINE.encode() not in (proc.stdout.read() if proc.stdout else b"")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in pids if not gone(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _kill_leftovers(pids: list[int]) -> None:
    for pid in pids:  # only processes this test's demo started, by PID
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()


def test_a_part_that_dies_stops_the_demo(demo: Demo) -> None:
    orders = next(p for p in demo.descendants
                  if "wardgate.demo.services" in " ".join(psutil.Process(p).cmdline())
                  and "orders" in psutil.Process(p).cmdline())
    os.kill(orders, signal.SIGKILL)
    assert demo.proc.wait(30) == 1
    err = demo.proc.stderr.read().decode() if demo.proc.stderr else ""
    assert "orders exited unexpectedly" in err
    assert _wait_gone(demo.descendants, 5) == []


def test_killed_demo_takes_its_children_along(demo: Demo) -> None:
    # SIGKILL cannot be handled: PR_SET_PDEATHSIG makes the kernel send the children SIGTERM
    os.kill(demo.proc.pid, signal.SIGKILL)
    demo.proc.wait(5)
    try:
        assert _wait_gone(demo.descendants, 25) == []
    finally:
        _kill_leftovers(demo.descendants)
