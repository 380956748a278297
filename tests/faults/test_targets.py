"""Faults of upstream targets under a steady load of idempotent GETs, through a real gateway
process to real upstream processes: what a client of the gateway notices."""

from __future__ import annotations

import signal
import time

from tests.faults.conftest import fault_config, target_view, wait_state
from tests.support.load import Load, between, summary


def test_one_of_two_targets_sigkilled_mid_load_fails_no_request(upstream_procs, gateway_factory):
    a, b = upstream_procs("a"), upstream_procs("b")
    cfg = fault_config([a.url, b.url])
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
