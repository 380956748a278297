"""Deferred per-iteration output (gateway/output.py): order, batching, close and abort."""

from __future__ import annotations

import asyncio

import pytest

from wardgate.config.gateway import UpstreamConfig
from wardgate.gateway import output
from wardgate.gateway.upstream.cluster import Target
from wardgate.gateway.upstream.connection import UpstreamConnection


class Transport:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, parts) -> None:
        self.calls.append(("writelines", b"".join(parts)))

    def is_closing(self) -> bool:
        return self.closing

    @property
    def data(self) -> bytes:
        return b"".join(d for _, d in self.calls)


def Conn() -> UpstreamConnection:  # noqa: N802 - reads as the connection it makes
    """A real upstream connection (an Output) on a recording transport."""
    cfg = UpstreamConfig(name="u", targets=["http://127.0.0.1:9"])
    conn = UpstreamConnection(Target("http://127.0.0.1:9", 1, cfg, None))
    conn.transport = Transport()
    return conn


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    output.BATCH.bind(loop)
    yield loop
    output.BATCH.bind(None)
    loop.close()


def run_one_iteration(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


def test_sends_of_one_iteration_reach_the_transport_together_and_in_order(loop):
    a, b = Conn(), Conn()
    a.send(b"1")
    b.send(b"x")
    a.send_many([b"2", b"3"])
    a.send(b"4")
    assert a.transport.calls == [] and b.transport.calls == []  # nothing until the loop turns
    run_one_iteration(loop)
    assert a.transport.data == b"1234" and len(a.transport.calls) == 1
    assert b.transport.calls == [("write", b"x")]
    a.send(b"5")  # a later iteration: a new batch
    run_one_iteration(loop)
    assert a.transport.data == b"12345"


def test_flush_before_close_and_nothing_after_abort_or_close(loop):
    a, b = Conn(), Conn()
    a.send(b"answer")
    a.flush_output()  # what close() does first
    assert a.transport.data == b"answer"
    b.send(b"lost")
    b.drop_output()  # what abort() does
    b.transport.closing = True
    b.send(b"too late")
    run_one_iteration(loop)
    assert b.transport.calls == [] and a.transport.data == b"answer"


def test_without_a_bound_loop_writes_go_straight_through():
    output.BATCH.bind(None)
    a = Conn()
    a.send(b"now")
    assert a.transport.calls == [("write", b"now")]


def test_bulk_data_goes_out_at_once_after_what_was_pending(loop):
    a = Conn()
    a.send(b"head")
    big = b"x" * (output.BULK_BYTES + 1)
    a.send(big)  # written now (the transport's high-water mark must see it), head first
    assert a.transport.data == b"head" + big
    a.send_many([b"y" * output.BULK_BYTES, b"z"])
    assert a.transport.data.endswith(b"z")
    a.send(b"tail")
    run_one_iteration(loop)
    assert a.transport.data == b"head" + big + b"y" * output.BULK_BYTES + b"z" + b"tail"
