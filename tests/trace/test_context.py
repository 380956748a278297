"""W3C Trace Context parsing (sans-I/O): traceparent and tracestate, the spec's valid and
invalid shapes, and the id source."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.trace.context import (
    TRACESTATE_MAX_BYTES,
    IdSource,
    parse_traceparent,
    traceparent_line,
    valid_tracestate,
)

TID = b"4bf92f3577b34da6a3ce929d0e0e4736"
PID = b"00f067aa0ba902b7"
VALID = b"00-" + TID + b"-" + PID + b"-01"


def test_valid_version_00_sampled_and_not():
    tp = parse_traceparent(VALID)
    assert tp is not None
    assert (tp.trace_id, tp.parent_id, tp.sampled) == (TID, PID, True)
    tp = parse_traceparent(VALID[:-2] + b"00")
    assert tp is not None and tp.sampled is False


def test_only_the_sampled_bit_counts():
    tp = parse_traceparent(VALID[:-2] + b"fe")  # unknown flags, sampled bit clear
    assert tp is not None and tp.sampled is False
    tp = parse_traceparent(VALID[:-2] + b"03")
    assert tp is not None and tp.sampled is True


@pytest.mark.parametrize("value", [
    VALID.upper(),                                   # upper-case hex is invalid
    b"00-" + TID.upper() + b"-" + PID + b"-01",
    b"00-" + TID + b"-" + PID.upper() + b"-01",
    b"00-" + TID + b"-" + PID + b"-0A",
    b"00-" + b"0" * 32 + b"-" + PID + b"-01",       # all-zero trace-id
    b"00-" + TID + b"-" + b"0" * 16 + b"-01",       # all-zero parent-id
    b"ff-" + TID + b"-" + PID + b"-01",             # version ff is forbidden
    VALID + b"-extra",                               # version 00 has no more fields
    VALID + b" ",
    VALID[:-1],                                      # short flags
    b"00-" + TID[:-1] + b"-" + PID + b"-01",         # short trace-id
    b"00-" + TID + b"-" + PID[:-1] + b"-01",
    b"00-" + TID + b"x-" + PID + b"-01",
    b"0-" + TID + b"-" + PID + b"-01",
    b"00_" + TID + b"_" + PID + b"_01",
    b"",
    b"garbage",
    b"00-" + TID + b"-" + PID,                       # no flags
])
def test_invalid_traceparents(value):
    assert parse_traceparent(value) is None


def test_future_version_with_extra_fields_is_parsed_as_00():
    tp = parse_traceparent(b"cc-" + TID + b"-" + PID + b"-01-what-the-future-holds")
    assert tp is not None and tp.trace_id == TID and tp.sampled is True
    assert parse_traceparent(b"cc-" + TID + b"-" + PID + b"-01") is not None


def test_future_version_must_separate_extra_fields_with_a_dash():
    assert parse_traceparent(b"cc-" + TID + b"-" + PID + b"-01x") is None
    assert parse_traceparent(b"cc-" + TID + b"-" + PID + b"-0") is None


@given(st.binary(max_size=80))
def test_never_raises_and_accepts_only_lowercase_hex(value):
    tp = parse_traceparent(value)
    if tp is not None:
        assert len(tp.trace_id) == 32 and len(tp.parent_id) == 16
        assert set(tp.trace_id + tp.parent_id) <= set(b"0123456789abcdef")


# -- tracestate --------------------------------------------------------------------------------
def test_tracestate_well_formed_is_kept_and_fields_are_joined():
    assert valid_tracestate([b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"]) \
        == b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    assert valid_tracestate([b"rojo=1", b"congo=2"]) == b"rojo=1,congo=2"
    assert valid_tracestate([b"tenant@vendor=x, , b=y"]) is not None  # empty members allowed


@pytest.mark.parametrize("value", [
    b"Rojo=1",               # upper-case key
    b"rojo",                 # no value
    b"rojo=",                # empty value
    b"rojo=a,rojo=b",        # duplicate key
    b"rojo=a\tb",            # a tab inside the value
    b"rojo=a=b",             # '=' in the value
    b"ro jo=1",
    b"rojo=\x7f",
    b"@vendor=1",
    b"tenant@Vendor=1",
    b"",
    b" , ",
])
def test_invalid_tracestate_is_dropped(value):
    assert valid_tracestate([value]) is None


def test_tracestate_bounds():
    members = b",".join(b"k%d=v" % i for i in range(32))
    assert valid_tracestate([members]) == members
    assert valid_tracestate([members + b",k32=v"]) is None  # 33 members
    assert valid_tracestate([b"k=" + b"v" * 256]) is not None  # 256: the longest value
    assert valid_tracestate([b"k=" + b"v" * 257]) is None
    big = b",".join(b"k%d=" % i + b"v" * 30 for i in range(17))
    assert len(big) > TRACESTATE_MAX_BYTES and valid_tracestate([big]) is None


# -- ids ---------------------------------------------------------------------------------------
def test_ids_are_hex_distinct_and_refill():
    ids = IdSource()
    seen = {ids.span_id() for _ in range(5000)}
    assert len(seen) == 5000
    assert all(len(s) == 16 and int(s, 16) for s in seen)
    traces = {ids.trace_id() for _ in range(2000)}
    assert len(traces) == 2000 and all(len(t) == 32 for t in traces)


def test_an_all_zero_id_is_never_handed_out():
    pools = iter([bytes(4096), bytes(8) + b"\x01" * 4088])
    ids = IdSource(urandom=lambda n: next(pools))
    sid = ids.span_id()
    assert sid != b"0" * 16 and len(sid) == 16


def test_traceparent_line():
    assert traceparent_line(TID, PID, True) == b"\r\ntraceparent: " + VALID
    assert traceparent_line(TID, PID, False).endswith(b"-00")
