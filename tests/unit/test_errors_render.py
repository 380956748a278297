"""The error renderer's memoised parts produce exactly the problem+json a fresh build would."""

from __future__ import annotations

import json

import pytest

from wardgate.errors import (
    DpopInvalidToken,
    GatewayError,
    InsufficientScope,
    InvalidToken,
    MethodNotAllowed,
    MissingToken,
    RateLimited,
    ServiceUnavailable,
    UseDpopNonce,
    _render,
    render,
)


def split(raw: bytes) -> tuple[list[bytes], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(v) for n, _, v in (ln.partition(b": ") for ln in lines)
                  if n == b"Content-Length")
    assert length == len(body)
    return lines, json.loads(body)


@pytest.mark.parametrize("err", [
    InvalidToken("The access token is invalid"),
    MissingToken("Authentication required"),
    InsufficientScope("lacks privileges", scope="orders:read orders:write"),
    ServiceUnavailable("keys unavailable", code="keys_unavailable", retry_after_s=5),
    RateLimited(3, "rate limit 'per-user' exceeded", policies=["per-user"]),
    GatewayError("détail non-ASCII \"quoted\""),
])
@pytest.mark.parametrize("rid", [b"abc123-0001", b'client"id\\x', b"caf\xe9"])
def test_body_and_head_match_a_fresh_rendering(err: GatewayError, rid: bytes) -> None:
    for _ in range(2):  # the second time from the memo
        lines, body = split(render(err, request_id=rid, server=b"wardgate", keep_alive=True))
        assert body == {"type": err.problem_type, "title": err.title, "status": err.status,
                        "detail": err.detail, "code": err.code,
                        "request_id": rid.decode("latin-1"), **err.extra_members()}
        assert lines[0] == b"HTTP/1.1 %d %s" % (err.status, err.title.encode())
        assert b"X-Request-Id: " + rid in lines and lines[-1] == b"Connection: keep-alive"
        for name, value in err.extra_headers():
            assert name + b": " + value in lines


def test_challenge_follows_realm_and_scope() -> None:
    a, b = InvalidToken("bad"), InsufficientScope("no", scope="x:y")
    a.realm, b.realm = "orders", "billing"
    assert a.extra_headers() == [(b"WWW-Authenticate",
                                  b'Bearer realm="orders", error="invalid_token", '
                                  b'error_description="bad"')]
    a.realm = "other"
    assert a.extra_headers()[0][1].startswith(b'Bearer realm="other"')
    assert b.extra_headers()[0][1].endswith(b', scope="x:y"')
    # the memo hands out copies: a caller appending to its list changes no later answer
    a.extra_headers().append((b"X", b"y"))
    assert len(a.extra_headers()) == 1


def _fresh(err: GatewayError, rid: bytes, server: bytes, keep: bool, head: bool) -> bytes:
    return _render(err, rid, server, keep, head, None)


@pytest.mark.parametrize("err", [
    InvalidToken("The access token is invalid"),
    InsufficientScope("lacks privileges", scope="orders:read"),
    ServiceUnavailable("keys unavailable", code="keys_unavailable", retry_after_s=5),
    DpopInvalidToken("needs DPoP", algs="ES256"),
    UseDpopNonce("use the nonce", algs="ES256", nonce="n-1"),
    MethodNotAllowed(["GET", "HEAD"]),
])
@pytest.mark.parametrize("server", [b"wardgate", b"we#ird##"])
def test_whole_answers_from_the_memo_are_byte_for_byte_fresh(err: GatewayError,
                                                             server: bytes) -> None:
    # ids of different lengths, one needing JSON escapes, keep-alive or not, HEAD or not;
    # each twice, so the second comes from the memo when the kind is memoized
    for rid in (b"abc-1", b"abc-0123456789", b'a"b\\c', b"abc-2"):
        for keep in (True, False):
            for head in (False, True):
                for _ in range(2):
                    got = render(err, request_id=rid, server=server, keep_alive=keep,
                                 head_only=head)
                    assert got == _fresh(err, rid, server, keep, head)


def test_a_changed_challenge_is_not_served_from_the_memo() -> None:
    a = InvalidToken("bad")
    first = render(a, request_id=b"r-1", server=b"wardgate", keep_alive=True)
    a.realm = "billing"
    second = render(a, request_id=b"r-1", server=b"wardgate", keep_alive=True)
    assert b'realm="wardgate"' in first and b'realm="billing"' in second
    a.scope = "x:y"
    assert b'scope="x:y"' in render(a, request_id=b"r-1", server=b"wardgate", keep_alive=True)
    closing = InvalidToken("bad", code="invalid_token")
    closing.close = True
    assert render(closing, request_id=b"r-1", server=b"wardgate",
                  keep_alive=True).split(b"\r\n\r\n")[0].endswith(b"Connection: close")


def test_a_subclass_adding_headers_is_rendered_afresh() -> None:
    class Counted(ServiceUnavailable):
        n = 0

        def extra_headers(self) -> list[tuple[bytes, bytes]]:
            Counted.n += 1
            return [(b"X-Attempt", b"%d" % Counted.n)]

    err = Counted("busy")
    assert err.answer_key() is None
    one = render(err, request_id=b"r-1", server=b"wardgate", keep_alive=True)
    two = render(err, request_id=b"r-1", server=b"wardgate", keep_alive=True)
    assert b"X-Attempt: 1" in one and b"X-Attempt: 2" in two
