"""Where the shared state lives: Redis node addresses from `state.redis_url`, and the Redis
Cluster key-to-slot rule. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SLOTS = 16384


@dataclass(frozen=True)
class Node:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0

    @property
    def address(self) -> str:
        """host:port, safe to log (never the credentials)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def with_address(self, host: str, port: int) -> Node:
        """Another node of the same deployment (a Cluster redirect): same TLS and credentials."""
        return Node(host, port, self.tls, self.username, self.password, 0)


def parse_url(url: str, *, cluster: bool = False) -> Node:
    """redis://[user:password@]host[:port][/db] or rediss:// (TLS). Raises ValueError."""
    u = urlsplit(url)
    if u.scheme not in ("redis", "rediss"):
        raise ValueError(f"{_redact(url)!r}: expected redis:// or rediss://")
    if not u.hostname:
        raise ValueError(f"{_redact(url)!r}: no host")
    try:
        port = u.port or 6379
    except ValueError:
        raise ValueError(f"{_redact(url)!r}: bad port") from None
    if u.query or u.fragment:
        raise ValueError(f"{_redact(url)!r}: query strings are not supported")
    db_text = u.path.strip("/")
    if db_text and not db_text.isdigit():
        raise ValueError(f"{_redact(url)!r}: the path is a database number, e.g. /0")
    db = int(db_text) if db_text else 0
    if cluster and db:
        raise ValueError(f"{_redact(url)!r}: Redis Cluster has only database 0")
    return Node(u.hostname, port, u.scheme == "rediss",
                unquote(u.username) if u.username else None,
                unquote(u.password) if u.password is not None else None, db)


def _redact(url: str) -> str:
    u = urlsplit(url)
    if u.password is None:
        return url
    netloc = u.netloc.rsplit("@", 1)[-1]
    return u._replace(netloc="***@" + netloc).geturl()


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return _redact(url)
    except ValueError:
        return "<unparseable url>"


def _crc16_table() -> list[int]:
    # CRC-16/XMODEM (poly 0x1021, init 0): the checksum Redis Cluster uses for key slots
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


_TABLE = _crc16_table()


def crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


def key_slot(key: bytes) -> int:
    """The Cluster slot of a key: of its hash tag (the text between the first `{` and the
    next `}`, when not empty), else of the whole key."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return crc16(key) % SLOTS
