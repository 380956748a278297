"""Observability core: the metric registry (preallocated slots, formatted only at scrape
time), the cross-process aggregation, and W3C trace context. Sans-I/O except for the mmap
the registry writes into; nothing here imports a web framework (workers stay lean)."""

from wardgate.observe.registry import (
    DURATION_BUCKETS_S,
    Family,
    MetricRegistry,
)

__all__ = ["DURATION_BUCKETS_S", "Family", "MetricRegistry"]
