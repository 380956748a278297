"""The exporter's counters on /metrics (wardgate_trace_spans_total{result})."""

from __future__ import annotations

import time

from tests.admin.support import TOKEN, TOKEN_ENV, sample, scrape, wait_admin, with_admin
from tests.support.gateway import free_port
from tests.trace.conftest import traced_config
from tests.trace.test_live import get

SPANS = "wardgate_trace_spans_total"


def _wait_for(cfg, result: str, value: float, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    got = 0.0
    while time.monotonic() < deadline:
        got = sample(scrape(cfg), SPANS, result=result)
        if got >= value:
            return got
        time.sleep(0.1)
    return got


def test_spans_exported_and_failed_are_counted(upstream, receiver, gateway_factory, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    cfg = with_admin(traced_config(upstream.url, {"otlp_endpoint": receiver.url,
                                                  "flush_interval_ms": 50}))
    gw = gateway_factory(cfg)
    wait_admin(cfg)
    for _ in range(5):
        assert get(gw.port, "/echo") == 200
    assert len(receiver.wait_spans(5)) == 5
    assert _wait_for(cfg, "exported", 5) == 5
    assert sample(scrape(cfg), SPANS, result="export_failed") == 0

    down = with_admin(traced_config(upstream.url, {
        "otlp_endpoint": f"http://127.0.0.1:{free_port()}/v1/traces", "flush_interval_ms": 50}))
    gw2 = gateway_factory(down)
    wait_admin(down)
    for _ in range(3):
        assert get(gw2.port, "/echo") == 200
    assert _wait_for(down, "export_failed", 3) == 3
    assert sample(scrape(down), SPANS, result="exported") == 0
