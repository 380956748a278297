"""The issuer's periodic tasks (key reload and purge) log one line per state change, not a
traceback per run: `key_reload_failing` once when the database goes away, `key_reload_ok`
once when it is back (the end-to-end case is tests/faults/test_keys_and_issuer.py)."""

from __future__ import annotations

import json

from sqlalchemy.exc import OperationalError

from wardgate.issuer.service import TaskHealth


def _events(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_an_outage_is_one_line_down_and_one_line_up(capsys):
    now = [100.0]
    h = TaskHealth("key_reload", lambda: now[0])
    h.ok()  # healthy runs say nothing
    for _ in range(5):
        h.failed(ConnectionRefusedError(111, "Connect call failed"))
        now[0] += 0.5
    h.failed(OperationalError("SELECT 1", {}, Exception("server closed the connection")))
    now[0] += 0.5
    h.ok()
    h.ok()
    err = capsys.readouterr().err
    events = _events(err)
    assert [e["event"] for e in events] == ["key_reload_failing", "key_reload_ok"], err
    assert events[0]["error"] == "ConnectionRefusedError"
    assert events[0]["database_unavailable"] is True and events[0]["level"] == "warning"
    assert events[1]["failed_runs"] == 6 and events[1]["failed_for_s"] == 3.0
    assert "Traceback" not in err


def test_a_second_outage_is_logged_again(capsys):
    h = TaskHealth("key_reload", lambda: 0.0)
    for _ in range(2):
        h.failed(OSError("down"))
        h.failed(OSError("down"))
        h.ok()
    names = [e["event"] for e in _events(capsys.readouterr().err)]
    assert names == ["key_reload_failing", "key_reload_ok"] * 2


def test_an_unexpected_error_keeps_its_traceback_once(capsys, caplog):
    h = TaskHealth("key_reload", lambda: 0.0)
    for _ in range(3):
        try:
            {}["missing"]
        except KeyError as e:
            h.failed(e)
    events = _events(capsys.readouterr().err)
    assert [e["event"] for e in events] == ["key_reload_failing"]
    assert events[0]["database_unavailable"] is False
    records = [r for r in caplog.records if r.name == "wardgate.issuer"]
    assert len(records) == 1 and records[0].exc_info is not None
