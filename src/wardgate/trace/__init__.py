"""Traces: W3C Trace Context propagation (sans-I/O: context.py, the pipeline step in step.py),
one span per request encoded as OTLP protobuf (otlp.py), exported over HTTP (export.py)."""

from wardgate.trace.context import IdSource, TraceParent, parse_traceparent, valid_tracestate
from wardgate.trace.step import TRACE_HEADERS, Tracer

__all__ = ["TRACE_HEADERS", "IdSource", "TraceParent", "Tracer", "parse_traceparent",
           "valid_tracestate"]
