"""The worker's sweep: one connection whose deadline check fails must not stop the others'."""

from __future__ import annotations

import json
from typing import Any

from wardgate.gateway.worker import sweep


class _Transport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class _Conn:
    def __init__(self, broken: bool = False) -> None:
        self.broken = broken
        self.checked: list[float] = []
        self.transport = _Transport()

    def check_timeouts(self, now: float) -> None:
        if self.broken:
            raise RuntimeError("a bug")
        self.checked.append(now)


class _State:
    def __init__(self, conns: list[Any]) -> None:
        self.connections = set(conns)


def test_a_failing_check_is_contained_and_the_rest_are_swept(capsys) -> None:
    good = [_Conn() for _ in range(5)]
    bad = _Conn(broken=True)
    state = _State([*good, bad])
    sweep(state, 12.5)  # type: ignore[arg-type]
    assert all(c.checked == [12.5] for c in good)
    assert bad not in state.connections and bad.transport.aborted
    assert all(c in state.connections and not c.transport.aborted for c in good)
    [line] = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert line["event"] == "connection_failed" and "RuntimeError: a bug" in line["error"]
    sweep(state, 13.0)  # type: ignore[arg-type]
    assert all(c.checked == [12.5, 13.0] for c in good)
