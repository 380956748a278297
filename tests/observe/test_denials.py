"""The denial ring: bounded, newest kept, torn records skipped, strings truncated."""

from __future__ import annotations

from wardgate.observe import denials
from wardgate.observe.denials import CAPACITY, DenialRing, read_ring


def test_ring_keeps_the_newest_capacity_records(tmp_path):
    ring = DenialRing(str(tmp_path), "w1")
    for i in range(CAPACITY + 37):
        ring.add(1000.0 + i, 401, "r", "no_token", f"10.0.0.{i % 250}", None)
    got = ring.read()
    assert len(got) == CAPACITY
    assert got[0]["time"] == 1000.0 + 37 and got[-1]["time"] == 1000.0 + CAPACITY + 36
    assert (tmp_path / ("w1" + denials.SUFFIX)).stat().st_size == denials.SIZE
    ring.close()


def test_long_fields_truncated_and_sub_hash_kept(tmp_path):
    ring = DenialRing(str(tmp_path), "w1")
    ring.add(5.0, 403, "x" * 300, "insufficient_scope", "2001:db8::1", "ab" * 8)
    (rec,) = ring.read()
    assert rec == {"time": 5.0, "status": 403, "route": "x" * 64,
                   "outcome": "insufficient_scope", "client": "2001:db8::1",
                   "sub_hash": "ab" * 8}
    ring.close()


def test_a_record_being_written_is_skipped(tmp_path):
    ring = DenialRing(str(tmp_path), "w1")
    ring.add(1.0, 401, "r", "expired", "1.2.3.4", None)
    ring.add(2.0, 401, "r", "expired", "1.2.3.5", None)
    ring.flush()
    buf = bytearray(ring._mm[:])
    # the writer zeroes a record's sequence number first: a reader copying then skips it
    off = denials._HEAD.size + 1 * denials._RECORD.size
    buf[off:off + 8] = bytes(8)
    assert [r["client"] for r in read_ring(buf)] == ["1.2.3.4"]
    ring.close()


def test_collect_merges_workers_newest_first_with_top_clients(tmp_path):
    a, b = DenialRing(str(tmp_path), "w1"), DenialRing(str(tmp_path), "w2")
    a.add(1.0, 401, "r", "no_token", "1.1.1.1", None)
    b.add(2.0, 429, "r", "rate_limited:x", "2.2.2.2", None)
    a.add(3.0, 401, "r", "expired", "2.2.2.2", None)
    a.flush()
    b.flush()
    got = denials.collect(str(tmp_path), limit=10)
    assert [d["time"] for d in got["denials"]] == [3.0, 2.0, 1.0]
    assert got["top_clients"][0] == {"client": "2.2.2.2", "count": 2}
    assert denials.collect(str(tmp_path / "missing")) == {"denials": [], "top_clients": []}
    a.close()
    b.close()


def test_a_refusal_reaches_the_file_on_flush_and_the_buffer_is_bounded(tmp_path):
    # add() is the request path's cost: one tuple, no file write; readers of the file (the
    # admin API in another process) see the records once the worker flushes
    ring = DenialRing(str(tmp_path), "w1")
    ring.add(1.0, 401, "r", "bad_signature", "1.2.3.4", None)
    assert denials.collect(str(tmp_path))["denials"] == []
    ring.flush()
    assert [d["outcome"] for d in denials.collect(str(tmp_path))["denials"]] == ["bad_signature"]
    for i in range(3 * CAPACITY):  # a flood between two flushes
        ring.add(10.0 + i, 401, "r", "bad_signature", "1.2.3.4", None)
    ring.flush()
    got = denials.collect(str(tmp_path), limit=CAPACITY)["denials"]
    assert len(got) == CAPACITY and got[0]["time"] == 10.0 + 3 * CAPACITY - 1
    assert got[-1]["time"] == 10.0 + 2 * CAPACITY
    ring.close()
