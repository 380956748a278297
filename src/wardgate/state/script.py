"""Server-side Lua scripts, called by SHA1 with the body as the fallback (NOSCRIPT after a
restart or SCRIPT FLUSH). A script's command bytes are built once per set of arguments; per
call only the key is spliced in."""

from __future__ import annotations

import hashlib

from wardgate.state.resp import encode


class Script:
    """A Lua script of one key (single-key scripts run on any Redis Cluster node that owns
    the key's slot)."""

    def __init__(self, body: str) -> None:
        self.body = body.encode()
        self.sha = hashlib.sha1(self.body, usedforsecurity=False).hexdigest().encode()
        self.load_command = encode(b"SCRIPT", b"LOAD", self.body)

    def bind(self, *argv: bytes | str | int) -> BoundScript:
        return BoundScript(self, argv)


class BoundScript:
    """A script with its ARGV fixed: `command(key)` is EVALSHA, `eval_command(key)` EVAL."""

    __slots__ = ("script", "_sha_head", "_eval_head", "_tail")

    def __init__(self, script: Script, argv: tuple[bytes | str | int, ...]) -> None:
        self.script = script
        n = 4 + len(argv)
        self._sha_head = b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$1\r\n1\r\n" % (n, script.sha)
        self._eval_head = (b"*%d\r\n$4\r\nEVAL\r\n$%d\r\n%s\r\n$1\r\n1\r\n"
                           % (n, len(script.body), script.body))
        # encode() of the ARGV alone, less its array header: the bulk strings
        tail = encode(*argv) if argv else b"*0\r\n"
        self._tail = tail[tail.index(b"\r\n") + 2:]

    def command(self, key: bytes) -> bytes:
        return b"".join((self._sha_head, b"$%d\r\n" % len(key), key, b"\r\n", self._tail))

    def eval_command(self, key: bytes) -> bytes:
        return b"".join((self._eval_head, b"$%d\r\n" % len(key), key, b"\r\n", self._tail))
