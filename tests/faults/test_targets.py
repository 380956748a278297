"""Faults of upstream targets under a steady load of idempotent GETs, through a real gateway
process to real upstream processes: what a client of the gateway notices."""

from __future__ import annotations

import json
import signal
import time

from tests.admin.support import admin_get
from tests.faults.conftest import fault_config, target_view, wait_state
from tests.support.load import Load, between, summary


def test_one_of_two_targets_sigkilled_mid_load_fails_no_request(upstream_procs, gateway_factory):
    a, b = upstream_procs("a"), upstream_procs("b")
    # The retry budget must cover the requests a dying target can hold at once (here up to one
    # per client): with the default floor of 3, a fourth concurrent retry is refused by design
    # (502 retry_budget_exhausted), which is what stops retries multiplying a real outage.
    cfg = fault_config([a.url, b.url],
                       circuit_breaker={"retry_budget": {"percent": 20, "min_retries": 8}})
    gw = gateway_factory(cfg)
    with Load(gw.port, "/echo", clients=8) as load:
        load.wait_for(200)
        before = {o.headers.get("x-upstream") for o in load.snapshot()}
        b.signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_state(cfg, b.url, {"ejected", "half_open"})
        time.sleep(2.5)  # past an ejection and a half-open trial against the dead target
    outcomes = load.stop()
    assert before == {"a", "b"}, "both targets served before the kill"
    after = between(outcomes, killed)
    assert len(after) > 100, summary(outcomes)
    bad = [o for o in outcomes if o.kind != "ok" or o.status != 200]
    assert not bad, summary(bad)
    assert {o.headers.get("x-upstream") for o in between(outcomes, killed + 1)} == {"a"}
    assert target_view(cfg, b.url)["workers"][0]["ejections"] >= 1


def _connections_to(pid: int, port: int) -> int:
    import psutil

    return sum(1 for c in psutil.Process(pid).net_connections("tcp")
               if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


def _rss(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


def _fds(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).num_fds())


def _breaker(cfg: dict, pid: int) -> dict:
    status, _, body = admin_get(cfg, "/admin/upstreams")
    assert status == 200, body
    workers = json.loads(body)["upstreams"][0]["breaker"]["workers"]
    return next(w for w in workers if w["pid"] == pid)


def test_hung_target_gives_504_within_route_timeout_without_pile_up(upstream_procs,
                                                                     gateway_factory):
    a, b = upstream_procs("a"), upstream_procs("b")
    total_s = 1.0
    cfg = fault_config([a.url, b.url], route={"timeouts": {"total_s": total_s}})
    gw = gateway_factory(cfg)
    worker = gw.worker_pids()[0]
    clients = 8
    with Load(gw.port, "/echo", clients=clients) as load:
        load.wait_for(300)
        rss_before, fds_before = _rss(worker), _fds(worker)
        b.signal(signal.SIGSTOP)  # accepts (the kernel completes handshakes), never answers
        hung = time.monotonic()
        peak = peak_fds = 0
        while time.monotonic() < hung + 6:
            peak = max(peak, _connections_to(worker, b.port))
            peak_fds = max(peak_fds, _fds(worker))
            time.sleep(0.1)
        rss_after = _rss(worker)
    outcomes = load.stop()
    # Still hung, load gone: every connection to it was cut at its request's deadline (none
    # left open waiting for an answer that never comes), nothing counted in flight.
    deadline = time.monotonic() + total_s + 3
    while time.monotonic() < deadline and (_connections_to(worker, b.port)
                                           or _breaker(cfg, worker)["active"]):
        time.sleep(0.1)
    left_to_hung = _connections_to(worker, b.port)
    breaker = _breaker(cfg, worker)
    b.signal(signal.SIGCONT)
    during = between(outcomes, hung)
    timed_out = [o for o in during if o.status == 504]
    served = [o for o in during if o.status == 200]
    assert timed_out, summary(during)
    assert {o.kind for o in during} == {"ok"}, summary(during)
    assert {o.status for o in during} <= {200, 504}, summary(during)
    # Each held request is answered 504 at the route's deadline (the sweeper adds <= 0.25 s),
    # never left hanging until the client gives up.
    assert max(o.latency for o in timed_out) < total_s + 1.5, sorted(o.latency for o in timed_out)
    assert min(o.latency for o in timed_out) >= total_s - 0.05
    # No pile-up: the hung target is ejected, so only the first requests and the half-open
    # trials wait on it; everything else goes to the healthy target, as fast as before.
    assert len(timed_out) <= clients + 8, summary(during)
    assert len(served) > 10 * len(timed_out), summary(during)
    assert {o.headers.get("x-upstream") for o in served} == {"a"}
    fast = sorted(o.latency for o in served)
    assert fast[len(fast) // 2] < 0.25, fast[len(fast) // 2]
    assert peak <= clients + 2, peak  # gateway connections to the hung target stay bounded
    # ... and so do all its descriptors (clients, both targets' pools, listeners, logs)
    assert peak_fds - fds_before <= clients + 4, (fds_before, peak_fds)
    assert left_to_hung == 0, left_to_hung
    assert breaker["active"] == 0 and breaker["pending"] == 0, breaker
    assert rss_after - rss_before < 20 * 2**20, (rss_before, rss_after)
    assert target_view(cfg, b.url)["workers"][0]["ejections"] >= 1


def test_target_answering_503_is_ejected_load_moves_and_it_recovers(upstream_procs,
                                                                     gateway_factory):
    a, b = upstream_procs("a"), upstream_procs("b")
    cfg = fault_config([a.url, b.url])
    gw = gateway_factory(cfg)
    with Load(gw.port, "/echo", clients=6) as load:
        load.wait_for(100)
        b.signal(signal.SIGUSR1)  # b now answers 503 to everything
        failing = time.monotonic()
        wait_state(cfg, b.url, {"ejected", "half_open"})
        time.sleep(1.5)
        b.signal(signal.SIGUSR2)  # healed
        healed = time.monotonic()
        wait_state(cfg, b.url, {"healthy"}, timeout=10)
        back = time.monotonic()
        time.sleep(1.0)
    outcomes = load.stop()
    assert {o.kind for o in outcomes} == {"ok"}, summary(outcomes)
    errors = [o for o in between(outcomes, failing) if o.status == 503]
    # Until the breaker opens, a few 503s pass through (answers, not gateway faults); then the
    # load moves to a, apart from half-open trials.
    assert 1 <= len(errors) <= 12, summary(between(outcomes, failing))
    moved = between(outcomes, failing + 0.5, healed)
    assert sum(o.status == 200 for o in moved) > 10 * max(1, sum(o.status == 503 for o in moved))
    assert {o.headers.get("x-upstream") for o in between(outcomes, back + 0.2)} == {"a", "b"}
    assert all(o.status == 200 for o in between(outcomes, back + 0.2)), summary(outcomes)


def test_all_targets_down_answers_503_fast_with_retry_after(upstream_procs, gateway_factory):
    a, b = upstream_procs("a"), upstream_procs("b")
    cfg = fault_config([a.url, b.url], health={"ejection_s": 2, "max_ejection_s": 4})
    gw = gateway_factory(cfg)
    with Load(gw.port, "/echo", clients=6) as load:
        load.wait_for(100)
        a.signal(signal.SIGKILL)
        b.signal(signal.SIGKILL)
        down = time.monotonic()
        wait_state(cfg, a.url, {"ejected"})
        wait_state(cfg, b.url, {"ejected"})
        ejected = time.monotonic()
        time.sleep(2.0)
    outcomes = load.stop()
    during = between(outcomes, down)
    assert {o.kind for o in during} == {"ok"}, summary(during)  # answered, never a hang
    assert {o.status for o in during} <= {200, 502, 503}, summary(during)
    late = between(outcomes, ejected + 0.3)
    refused = [o for o in late if o.status == 503]
    # Apart from the half-open trial each target gets when its ejection ends (refused: 502),
    # every request is a fast 503 telling the client when to come back.
    assert len(refused) > 50 and len(late) - len(refused) <= 4, summary(late)
    assert {o.status for o in late} <= {502, 503}
    assert all(o.headers.get("retry-after", "").isdigit() for o in refused)
    assert max(o.latency for o in refused) < 0.5, max(o.latency for o in refused)
    assert max(o.latency for o in during) < 2.0
