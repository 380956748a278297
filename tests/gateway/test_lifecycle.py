"""Process lifecycle: reload (good and bad files), SIGTERM drain, crash restart, several workers."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time

import psutil
import pytest
import yaml

from tests.gateway.conftest import plain_config


def fetch(port: int, path: str = "/echo", timeout: float = 10) -> tuple[int, dict]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, (json.loads(body) if body.startswith(b"{") else {})


def test_reload_switches_config_without_dropping_requests(upstream, upstream_b, gateway_factory):
    gw = gateway_factory(plain_config(upstream.url))
    assert fetch(gw.port)[1]["upstream"] == "a"
    failures: list[object] = []
    stop = threading.Event()
    count = [0]

    def hammer() -> None:
        while not stop.is_set():
            try:
                status, _ = fetch(gw.port)
                if status != 200:
                    failures.append(status)
                count[0] += 1
            except OSError as exc:
                failures.append(exc)

    slow: list[int] = []
    t_slow = threading.Thread(target=lambda: slow.append(fetch(gw.port, "/slow?ms=1500")[0]))
    t = threading.Thread(target=hammer)
    t.start()
    t_slow.start()
    time.sleep(0.3)
    new = plain_config(upstream_b.url)
    new["listen"] = gw.config["listen"]
    new["access_log"] = gw.config["access_log"]
    gw.write(new)
    gw.signal(signal.SIGHUP)
    gw.wait_event("reloaded")
    deadline = time.monotonic() + 5
    while fetch(gw.port)[1].get("upstream") != "b" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    t.join()
    t_slow.join()
    assert fetch(gw.port)[1]["upstream"] == "b"
    assert slow == [200], "the in-flight request survived the reload"
    assert failures == [], f"{len(failures)} of {count[0]} requests failed during reload"
    assert count[0] > 20


def test_reload_with_invalid_file_keeps_old_config(upstream, gateway_factory):
    gw = gateway_factory(plain_config(upstream.url))
    workers = gw.worker_pids()
    gw.path.write_text("listen: [not, a, string]\nroutes: 7\n")
    gw.signal(signal.SIGHUP)
    gw.wait_event("reload_rejected")
    assert "routes" in gw.stderr()
    assert fetch(gw.port)[0] == 200
    assert gw.worker_pids() == workers


def test_sigterm_drains_in_flight_requests(upstream, gateway_factory):
    gw = gateway_factory(plain_config(upstream.url))
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(fetch(gw.port, "/slow?ms=1000")[0]))
    t.start()
    time.sleep(0.3)
    gw.signal(signal.SIGTERM)
    t.join(10)
    assert result == [200]
    assert gw.proc.wait(10) == 0
    with pytest.raises(OSError):
        fetch(gw.port, timeout=1)


def test_drain_answers_a_connection_accepted_before_it_sent_a_byte(upstream, gateway_factory):
    # The client connected (the worker accepted) and its request is on the way when the drain
    # begins, as on every reload under load: the request must be answered, not the socket shut.
    gw = gateway_factory(plain_config(upstream.url))
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    time.sleep(0.3)  # accepted by the worker
    gw.signal(signal.SIGTERM)
    time.sleep(0.3)  # draining
    sock.sendall(b"GET /echo HTTP/1.1\r\nHost: gw\r\n\r\n")
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 200 ") and b"connection: close" in head
    assert gw.proc.wait(10) == 0


def test_crashed_worker_is_restarted(upstream, gateway_factory):
    gw = gateway_factory(plain_config(upstream.url))
    [pid] = gw.worker_pids()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = [p for p in gw.worker_pids() if psutil.Process(p).status() != "zombie"]
        if pids and pids != [pid]:
            break
        time.sleep(0.05)
    gw.wait_event("worker_ready", count=2)
    assert fetch(gw.port)[0] == 200


def _live_workers(gw) -> list[int]:
    out = []
    for p in gw.worker_pids():
        try:
            if psutil.Process(p).status() != "zombie":
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def test_hung_worker_is_killed_and_replaced(upstream, gateway_factory):
    # SIGSTOP freezes the worker as an endless loop in a callback would: its event loop stops
    # beating. A client that connects meanwhile waits in the shared socket's queue and is
    # answered by the replacement, so nothing is lost.
    cfg = plain_config(upstream.url)
    cfg["timeouts"] = {"watchdog_s": 1.5}
    gw = gateway_factory(cfg)
    [pid] = gw.worker_pids()
    time.sleep(2.5)  # a healthy worker keeps beating: not killed
    assert _live_workers(gw) == [pid]
    os.kill(pid, signal.SIGSTOP)
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(fetch(gw.port, timeout=15)[0]))
    waiter.start()
    gw.wait_event("worker_hung", timeout=10)
    gw.wait_event("worker_ready", count=2, timeout=15)
    waiter.join(15)
    assert got == [200]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    [new] = _live_workers(gw)
    assert new != pid
    hung = [json.loads(line) for line in gw.stderr().splitlines()
            if '"worker_hung"' in line]
    assert hung and hung[0]["pid"] == pid and hung[0]["silent_s"] >= 1.5
    # the replacement is watched too
    os.kill(new, signal.SIGSTOP)
    gw.wait_event("worker_hung", count=2, timeout=10)
    gw.wait_event("worker_ready", count=3, timeout=15)
    assert fetch(gw.port)[0] == 200


def test_watchdog_zero_leaves_a_silent_worker_alone(upstream, gateway_factory):
    cfg = plain_config(upstream.url)
    cfg["timeouts"] = {"watchdog_s": 0}
    gw = gateway_factory(cfg)
    [pid] = gw.worker_pids()
    os.kill(pid, signal.SIGSTOP)
    time.sleep(2.0)
    assert _live_workers(gw) == [pid]
    assert '"worker_hung"' not in gw.stderr()
    os.kill(pid, signal.SIGCONT)
    assert fetch(gw.port)[0] == 200


def test_several_workers_share_the_port(upstream, gateway_factory):
    cfg = plain_config(upstream.url)
    cfg["workers"] = 2
    gw = gateway_factory(cfg)
    assert len(gw.worker_pids()) == 2
    for _ in range(20):
        assert fetch(gw.port)[0] == 200


def test_run_refuses_invalid_config(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"upstreams": [], "routes": [{"name": "r", "upstream": "x"}]}))
    proc = subprocess.run([sys.executable, "-m", "wardgate", "run", "--config", str(path)],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode != 0
    assert "refusing to start" in proc.stderr
    assert "routes[0]" in proc.stderr
