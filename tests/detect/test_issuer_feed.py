"""The gateway's reading of the issuer's detection stream (wardgate.detect.issuer_feed)."""

from __future__ import annotations

import json

from wardgate.config.detect import DetectionConfig
from wardgate.detect.issuer_feed import gateway_group, parse


def test_parse_keeps_records_and_marks_what_does_not_parse() -> None:
    good = json.dumps({"kind": "credential_stuffing", "action": "deny", "score": 1.0}).encode()
    reply = [[b"{wardgate:detections}", [
        [b"1-0", [b"d", good]],
        [b"2-0", [b"d", b"not json"]],
        [b"3-0", [b"x", good]],                                   # no `d` field
        [b"4-0", [b"d", json.dumps({"kind": 3, "action": "log"}).encode()]],
        [b"5-0", [b"d"]],                                         # odd field list
    ]]]
    got = parse(reply)
    assert [i for i, _ in got] == [b"1-0", b"2-0", b"3-0", b"4-0", b"5-0"]
    assert got[0][1] is not None and got[0][1]["kind"] == "credential_stuffing"
    assert all(rec is None for _, rec in got[1:])
    assert parse(None) == [] and parse([]) == []


def test_the_feed_is_on_by_default_and_names_one_stream() -> None:
    cfg = DetectionConfig()
    assert cfg.issuer_feed is True and cfg.issuer_stream == "{wardgate:detections}"
    assert ":" in gateway_group()
