from __future__ import annotations

import json

from wardgate.gateway.accesslog import AccessLog
from wardgate.gateway.request import Request


class _Ident:
    provider = "corp"
    sub_hash = "0123abcd"


def _line(tmp_path, **req_fields) -> dict:
    log = AccessLog(str(tmp_path / "a.log"), include_query=True)
    req = Request()
    req.request_id = b"rid-1"
    req.client_ip = "10.0.0.1"
    req.method = "GET"
    for k, v in req_fields.items():
        setattr(req, k, v)
    log.record(req, 200, 5, 7, "http://up:8080", req_fields.get("error"), 1.23456)
    log.close()
    lines = (tmp_path / "a.log").read_text().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_line_is_json_with_the_documented_fields(tmp_path):
    entry = _line(tmp_path, path="/a", query=b"x=1")
    assert entry["path"] == "/a?x=1" and entry["status"] == 200 and entry["duration_ms"] == 1.235
    assert set(entry) == {"time", "request_id", "client", "method", "path", "route", "target",
                          "status", "bytes_in", "bytes_out", "duration_ms", "auth"}


def test_hostile_values_cannot_break_out_of_their_json_string(tmp_path):
    path = '/a","status":500,"x":"\\\u2028\x00\x1b\r\n'
    entry = _line(tmp_path, path=path, auth_outcome='ok","forged":"1')
    assert entry["path"] == path and entry["status"] == 200
    assert "forged" not in entry and entry["auth"] == 'ok","forged":"1'


def test_identity_fields_are_added(tmp_path):
    entry = _line(tmp_path, path="/a", identity=_Ident())
    assert entry["provider"] == "corp" and entry["sub_hash"] == "0123abcd"
