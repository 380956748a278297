"""The replay cache (one worker's), the Redis key, and the request URI a proof must name."""

from __future__ import annotations

from wardgate.dpop.htu import normalise, request_uri
from wardgate.dpop.replay import ReplayCache, local_key, redis_key
from wardgate.dpop.step import forwarded_origin


def test_replay_cache_keeps_entries_for_at_least_one_window() -> None:
    c = ReplayCache(window_s=10, max_entries=100)
    k = local_key("jkt", "jti-1")
    assert c.add(k, 1000.0) == 0
    for t in (1000.0, 1005.0, 1009.9, 1010.0, 1019.9):
        assert c.add(k, t) == 1, t  # a replay, however the generations turned
    assert c.add(local_key("jkt", "jti-2"), 1012.0) == 0
    assert c.add(k, 1031.0) == 0  # two windows later: forgotten (its iat is refused anyway)


def test_replay_cache_refuses_when_full_rather_than_forgetting() -> None:
    c = ReplayCache(window_s=60, max_entries=4)
    assert [c.add(local_key("k", str(i)), 1.0) for i in range(3)] == [0, 0, 2]
    assert c.add(local_key("k", "0"), 2.0) == 1


def test_keys_separate_clients() -> None:
    assert local_key("a", "1") != local_key("b", "1")
    assert redis_key("a", "1") != redis_key("b", "1")
    key = redis_key("a", "x" * 10_000)
    assert key.startswith(b"wg:dpop:{") and key.endswith(b"}") and len(key) == 42


def test_request_uri_normalised() -> None:
    assert request_uri("http", "API.example:80", "/a/./b/../c") == "http://api.example/a/c"
    assert request_uri("https", "api.example:8443", "") == "https://api.example:8443/"
    assert request_uri("https", "[::1]:443", "/%7euser/%2f") == "https://[::1]/~user/%2F"
    assert request_uri("http", "bad host", "/") is None
    assert normalise("https://api.example/p?q") is None
    assert normalise("ftp://api.example/p") is None


def test_forwarded_origin() -> None:
    h = [(b"forwarded", b'for=1.2.3.4;proto=https;host="api.example", for=5.6.7.8;proto=http')]
    assert forwarded_origin(h, "http", b"inner:8080") == ("https", b"api.example")
    x = [(b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"edge.example, inner")]
    assert forwarded_origin(x, "http", b"inner:8080") == ("https", b"edge.example")
    assert forwarded_origin([], "http", b"inner:8080") == ("http", b"inner:8080")
