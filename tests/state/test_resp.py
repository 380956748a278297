"""The RESP2 codec (wardgate.state.resp): replies in order however the bytes are split,
error replies returned not raised, and hostile input refused as a protocol error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.state.resp import Parser, ProtocolError, ReplyError, encode

WIRE = (b"+OK\r\n:42\r\n:-7\r\n$5\r\nhello\r\n$-1\r\n*3\r\n:1\r\n$0\r\n\r\n*1\r\n+x\r\n"
        b"-NOSCRIPT No matching script\r\n*-1\r\n$6\r\nab\r\ncd\r\n")


def _values(replies: list) -> list:
    return [("err", r.message) if isinstance(r, ReplyError) else r for r in replies]


EXPECTED = ["OK", 42, -7, b"hello", None, [1, b"", ["x"]],
            ("err", "NOSCRIPT No matching script"), None, b"ab\r\ncd"]


def test_every_reply_type() -> None:
    assert _values(Parser().feed(WIRE)) == EXPECTED


@given(st.lists(st.integers(1, len(WIRE) - 1), max_size=12, unique=True))
def test_any_split_of_the_bytes_gives_the_same_replies(cuts: list[int]) -> None:
    p = Parser()
    out: list = []
    prev = 0
    for c in sorted(cuts) + [len(WIRE)]:
        out += p.feed(WIRE[prev:c])
        prev = c
    assert _values(out) == EXPECTED


def test_encode_is_an_array_of_bulk_strings() -> None:
    assert encode(b"SET", "k", 12) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"


def test_an_error_reply_names_its_kind() -> None:
    (err,) = Parser().feed(b"-MOVED 3999 127.0.0.1:6381\r\n")
    assert isinstance(err, ReplyError) and err.kind == "MOVED"


@pytest.mark.parametrize("wire", [
    b"?what\r\n",                       # unknown type
    b":12x\r\n",                        # not an integer
    b"$3\r\nabcd\r\n",                  # bulk not terminated where announced
    b"$99999999999\r\n",                # bulk larger than we hold
    b"*99999999\r\n",                   # array longer than we hold
    b"*1\r\n" * 20 + b":1\r\n",         # nested too deep
    b"+" + b"x" * 5000,                 # a line that never ends
])
def test_hostile_replies_are_protocol_errors(wire: bytes) -> None:
    with pytest.raises(ProtocolError):
        Parser().feed(wire)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_replies_or_a_protocol_error(data: bytes) -> None:
    try:
        Parser().feed(data)
    except ProtocolError:
        pass
