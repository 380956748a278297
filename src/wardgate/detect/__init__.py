"""Fraud detection at the edge: learned per-token and per-subject baselines, explained
verdicts, actions by policy; one pipeline step after authentication.

    events.py    the compact event of one finished request; network prefixes (no I/O)
    table.py     the size-capped dict every per-key table is (no I/O)
    signals.py   token replay, rate against a learned baseline, enumeration, refused
                 storms and key probing (no I/O)
    verdict.py   findings, verdicts and their explanations (no I/O)
    flags.py     what is flagged until when (no I/O)
    detector.py  the signals over one event stream, allow lists, cooldowns (no I/O)
    step.py      a route's compiled step: the action on a flagged request
    adapter.py   the worker's buffer and task, and what a verdict does (log, metrics, ring)
    remote.py    token observations and verdicts shared through Redis (wardgate.state)
    login.py     the issuer's signals: credential stuffing, password spraying (no I/O;
                 its adapter is wardgate.issuer.detection)
    issuer_feed.py  the issuer's detections read from Redis into this gateway's views
"""

from __future__ import annotations

from wardgate.detect.adapter import DetectionRuntime

__all__ = ["DetectionRuntime"]
