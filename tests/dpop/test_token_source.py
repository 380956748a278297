"""How the token came decides what a bound token needs (wardgate.auth.extract, sans-I/O): the
DPoP scheme and a cookie alone are checked with a proof; a Bearer header or the query (also
next to the cookie) is a bearer presentation, refused for a bound token."""

from __future__ import annotations

import pytest

from wardgate.auth.extract import BEARER, COOKIE, DPOP, TokenExtractor
from wardgate.config.auth import TokenSources

EX = TokenExtractor(TokenSources(cookie="at", query="access_token"))


@pytest.mark.parametrize(("headers", "query", "kind"), [
    ([(b"authorization", b"DPoP t1")], b"", DPOP),
    ([(b"authorization", b"DPoP t1"), (b"cookie", b"at=t1")], b"", DPOP),
    ([(b"cookie", b"x=1; at=t1")], b"", COOKIE),
    ([(b"authorization", b"Bearer t1")], b"", BEARER),
    ([(b"authorization", b"Bearer t1"), (b"cookie", b"at=t1")], b"", BEARER),
    ([(b"cookie", b"at=t1")], b"access_token=t1", BEARER),
    ([], b"access_token=t1", BEARER),
    ([(b"authorization", b"Basic abc"), (b"cookie", b"at=t1")], b"", COOKIE),
])
def test_kind(headers: list[tuple[bytes, bytes]], query: bytes, kind: int) -> None:
    assert EX.extract_scheme(headers, query) == (b"t1", kind)


def test_no_token() -> None:
    assert EX.extract_scheme([(b"cookie", b"x=1")], b"")[0] is None
    # extract() (the service-side zero-trust mode) still sees cookie tokens, never DPoP ones
    assert EX.extract([(b"cookie", b"at=t1")], b"") == b"t1"
    assert EX.extract([(b"authorization", b"DPoP t1")], b"") is None
