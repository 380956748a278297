"""Node addresses from `state.redis_url`, and Redis Cluster key slots (checked against a
real Redis's CLUSTER KEYSLOT in test_client.py)."""

from __future__ import annotations

import pytest

from wardgate.state.nodes import crc16, key_slot, parse_url, redact


def test_crc16_is_xmodem() -> None:
    assert crc16(b"123456789") == 0x31C3  # the check value of CRC-16/XMODEM


def test_a_hash_tag_decides_the_slot() -> None:
    assert key_slot(b"wg:rl:{user1000}.following") == key_slot(b"user1000")
    assert key_slot(b"foo{}{bar}") == crc16(b"foo{}{bar}") % 16384  # empty tag: whole key
    assert key_slot(b"foo{{bar}}zap") == crc16(b"{bar") % 16384


def test_urls() -> None:
    n = parse_url("rediss://app:s%40cret@cache.internal:6380/3")
    assert (n.host, n.port, n.tls, n.username, n.password, n.db) == \
        ("cache.internal", 6380, True, "app", "s@cret", 3)
    assert parse_url("redis://127.0.0.1").port == 6379
    assert "s%40cret" not in redact("rediss://app:s%40cret@cache.internal:6380/3")


@pytest.mark.parametrize("url", ["http://x:1", "redis://", "redis://h:1/x", "redis://h:99999",
                                 "redis://h:1/0?ssl=1"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_url(url)


def test_cluster_has_only_db_0() -> None:
    with pytest.raises(ValueError, match="only database 0"):
        parse_url("redis://h:1/2", cluster=True)
