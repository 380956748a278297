"""compact.py's decoders against plain references built from the standard library: the fast
paths (one-pass base64url translation, the JSON scanner called directly) must decide exactly as
the obvious implementations do, on generated valid and invalid inputs."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.auth import compact
from wardgate.auth.errors import Rejected

_URLSAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _ref_b64url(segment: bytes) -> bytes:
    """base64url without padding, canonical only: the spec, written out plainly."""
    if any(c not in _URLSAFE for c in segment) or len(segment) % 4 == 1:
        raise Rejected("malformed")
    data = base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=") != segment:
        raise Rejected("malformed")  # stray bits: another spelling of the same bytes
    return data


def _ref_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({k for k, _ in pairs}) != len(pairs):
        raise Rejected("duplicate_key")
    return dict(pairs)


def _ref_constant(name: str) -> Any:
    raise Rejected("malformed")


def _ref_json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_ref_pairs,
                           parse_constant=_ref_constant)
    except RecursionError:
        raise Rejected("too_deep") from None
    except (UnicodeDecodeError, ValueError):
        raise Rejected("malformed") from None
    if not isinstance(value, dict):
        raise Rejected("malformed")
    return value


def _outcome(fn: Any, arg: bytes) -> tuple[str, Any]:
    try:
        return "ok", fn(arg)
    except Rejected as exc:
        return "rejected", exc.reason


_b64_bytes = st.sampled_from(list(_URLSAFE + b"+/=.! \n\t\x00\x7f\x80\xff"))


@settings(max_examples=1000)
@given(st.binary(max_size=40)
       | st.lists(_b64_bytes, max_size=40).map(bytes)
       | st.binary(max_size=40).map(lambda d: base64.urlsafe_b64encode(d).rstrip(b"="))
       | st.binary(max_size=40).map(base64.urlsafe_b64encode)
       | st.binary(max_size=40).map(base64.b64encode))
def test_b64url_decode_matches_reference(segment: bytes) -> None:
    assert _outcome(compact.b64url_decode, segment) == _outcome(_ref_b64url, segment)


@pytest.mark.parametrize("segment", [b"ab+c", b"ab/c", b"abc=", b"ab==", b"YQ==", b"a", b"ab c",
                                     b"ab\nc", b"ab.c", b"ab!c", b"aB", b"abD", b"\xc3\xa9ab",
                                     b"====", b"!!!!", b"YW!j"])
def test_b64url_decode_refuses(segment: bytes) -> None:
    with pytest.raises(Rejected):
        compact.b64url_decode(segment)


_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=3), c, max_size=4),
    max_leaves=12)
# fragments that recombine into near-JSON: duplicates, trailing data, odd whitespace, constants
_fragment = st.sampled_from(["{", "}", "[", "]", ",", ":", " ", "\t", "\n", "\r", "\x0c", "\ufeff",
                             '"a"', '"a"', '"b"', "1", "-0", "1e400", "NaN", "-Infinity",
                             "Infinity", "null", "true", "x", "\x00", "\\", '"\\u0061"'])


@settings(max_examples=1000)
@given(_json_value.map(lambda v: json.dumps(v).encode())
       | st.tuples(st.sampled_from(["", " ", "\n\t ", "\r"]), _json_value,
                   st.sampled_from(["", " ", "\r\n", " x", "{}"])).map(
           lambda t: (t[0] + json.dumps(t[1]) + t[2]).encode())
       | st.lists(_fragment, max_size=14).map(lambda parts: "".join(parts).encode())
       | st.binary(max_size=24))
def test_json_object_matches_reference(raw: bytes) -> None:
    assert _outcome(compact.json_object, raw) == _outcome(_ref_json, raw)


@pytest.mark.parametrize("raw,reason", [
    (b'{"a":1,"a":2}', "duplicate_key"),
    (b'{"a":{"b":1,"b":2}}', "duplicate_key"),
    (b'{"a":[{"b":1,"b":1}]}', "duplicate_key"),
    (b'{"a":"\\u0062","\\u0061":1}', "duplicate_key"),
    (b'\xef\xbb\xbf{}', "malformed"),
    (b'{"a":1} x', "malformed"),
    (b'{"a":1}\x0c', "malformed"),
    (b' ', "malformed"),
    (b'', "malformed"),
    (b'[{}]', "malformed"),
    (b'{"a":NaN}', "malformed"),
    (b"[" * 100_000, "too_deep"),
])
def test_json_object_refuses(raw: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as info:
        compact.json_object(raw)
    assert info.value.reason == reason


def test_json_object_allows_json_whitespace() -> None:
    assert compact.json_object(b' \t\r\n{"a" : [1, {"b": 2}]}\r\n\t ') == {"a": [1, {"b": 2}]}


def test_b64url_decode_is_binascii_strict() -> None:
    # the one-pass translation relies on strict mode refusing the byte '+/=' are mapped to
    with pytest.raises(binascii.Error):
        binascii.a2b_base64(b"YW!j", strict_mode=True)
