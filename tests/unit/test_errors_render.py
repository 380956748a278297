"""The error renderer's memoised parts produce exactly the problem+json a fresh build would."""

from __future__ import annotations

import json

import pytest

from wardgate.errors import (
    GatewayError,
    InsufficientScope,
    InvalidToken,
    MissingToken,
    RateLimited,
    ServiceUnavailable,
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
