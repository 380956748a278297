"""The exporter's counters in the worker's metric registry (observe/registry.py).

Spans are counted by the exporter after each round, off the request path: the running totals
it keeps are copied into this worker's slots (each slot has one writer, so a plain store)."""

from __future__ import annotations

from typing import Any

SPANS = "wardgate_trace_spans_total"
RESULTS = ("exported", "export_failed", "queue_full")


def declare_trace_metrics(metrics: Any, exporter: Any) -> None:
    """Declare `wardgate_trace_spans_total{result}` and keep it current after every export
    round (`metrics` is observe.http.GatewayMetrics, `exporter` trace.export.OtlpExporter)."""
    reg = metrics.registry
    fam = reg.family(SPANS, "counter", "Spans by fate: exported, dropped because the export "
                     "failed, dropped because the queue was full", ("result",))
    slots = tuple(reg.series(fam, r) for r in RESULTS)
    bound: list[Any] = []

    def bind(values: Any) -> None:
        bound.append(values)

    def update(exp: Any) -> None:
        if bound:
            values = bound[0]
            values[slots[0]] = exp.exported
            values[slots[1]] = exp.failed
            values[slots[2]] = exp.tracer.dropped

    metrics.on_bind(bind)
    exporter.on_export = update
