"""A keep-alive connection repeating its last allowed request reuses the auth decision
(pipeline.dispatch); these tests show that it is reused only for the very same request, and
that what changes with time (expiry, key removal, revocation) is checked every time.

Driven in-process: the worker's own ClientProtocol and pipeline over recording transports, with
a pooled upstream connection whose answers the test feeds, so a test sees exactly what went
upstream and what the client got.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from wardgate.auth.keys import key_from_jwk
from wardgate.config import load_gateway
from wardgate.gateway import output
from wardgate.gateway.accesslog import AccessLog
from wardgate.gateway.protocol import ClientProtocol
from wardgate.gateway.runtime import Runtime
from wardgate.gateway.upstream.connection import UpstreamConnection
from wardgate.gateway.worker import WorkerState

from .helpers import AUD, ISS, claims, public_jwk, sign

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Recorder:
    """A transport that keeps what was written."""

    def __init__(self) -> None:
        self.data = b""
        self.closing = False

    def write(self, data: bytes) -> None:
        self.data += data

    def writelines(self, parts: Any) -> None:
        self.data += b"".join(parts)

    def take(self) -> bytes:
        data, self.data = self.data, b""
        return data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


@pytest.fixture(autouse=True)
def direct_writes() -> Iterator[None]:
    """Writes go straight to the transports (no per-iteration batching to flush)."""
    saved = output.BATCH.loop
    output.BATCH.bind(None)
    yield
    output.BATCH.bind(saved)


class Conn:
    """One client connection to an in-process gateway with one pooled upstream connection."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        state = WorkerState(rt, asyncio.get_running_loop(), AccessLog("-", False, enabled=False))
        self.client = ClientProtocol(state, "http")
        self.out = Recorder()
        self.client.connection_made(self.out)
        target = rt.clusters["up"].targets[0]
        target._loop = state.loop  # set when a target first connects; this one never does
        self.upstream = UpstreamConnection(target)
        self.up = Recorder()
        self.upstream.connection_made(self.up)
        target.open.add(self.upstream)
        target.idle.append(self.upstream)

    async def send(self, method: str, path: str, token: bytes | None,
                   extra: bytes = b"") -> tuple[bytes, bytes]:
        """(what reached the upstream, b"" if nothing; what the client got)."""
        creds = b"Authorization: Bearer " + token + b"\r\n" if token is not None else b""
        self.client.data_received(f"{method} {path} HTTP/1.1\r\nHost: gw\r\n".encode()
                                  + extra + creds + b"\r\n")
        await asyncio.sleep(0.01)  # a key refetch runs as a task
        forwarded = self.up.take()
        if forwarded:
            self.upstream.data_received(OK)
        return forwarded, self.out.take()


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def without_request_id(head: bytes) -> bytes:
    return b"\r\n".join(line for line in head.split(b"\r\n")
                        if not line.lower().startswith(b"x-request-id"))


@pytest.fixture
async def gateway(tmp_path: Path, rsa_key: Any) -> Any:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk(rsa_key, "RS256", "rsa1")]}))
    auth = {"providers": ["main"], "require": {"scopes": ["orders:read"]},
            "methods": {"DELETE": {"scopes": ["orders:delete"]}}}
    cfg = {
        "listen": "127.0.0.1:8080", "workers": 1, "access_log": {"enabled": False},
        "providers": [{"name": "main", "issuer": ISS, "audiences": [AUD],
                       "algorithms": ["RS256"], "leeway_s": 0, "jwks_file": str(jwks)}],
        "upstreams": [{"name": "up", "targets": ["http://127.0.0.1:9"]}],
        "routes": [
            {"name": "tenant", "match": {"path_prefix": "/t/{tenant}"}, "upstream": "up",
             "auth": {"providers": ["main"],
                      "require": {"claims": [{"claim": "tenant", "equals_param": "tenant"}]}},
             "claims_to_headers": {"sub": "X-User"}},
            {"name": "public", "match": {"path_prefix": "/pub"}, "upstream": "up",
             "auth": {"providers": ["main"], "methods": {"GET": {"allow_missing": True}}},
             "claims_to_headers": {"sub": "X-User"}},
            {"name": "orders", "match": {"path_prefix": "/orders"}, "upstream": "up",
             "auth": auth, "claims_to_headers": {"sub": "X-User"}},
        ],
    }
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(cfg))
    rt = Runtime(load_gateway(str(tmp_path / "g.yaml")))
    await rt.start()
    yield rt, jwks
    await rt.stop()


async def allowed_twice(conn: Conn, path: str, t: bytes) -> None:
    """A GET forwarded twice: the second time the connection's auth decision is reused."""
    for _ in range(2):
        up, answer = await conn.send("GET", path, t)
        assert up and status(answer) == 200


def token(rsa_key: Any, **over: Any) -> bytes:
    now = int(time.time())
    base = {"iat": now - 10, "exp": now + 300, "scope": "orders:read", "tenant": "acme"}
    base.update(over)
    return sign({"alg": "RS256", "typ": "at+jwt", "kid": "rsa1"}, claims(**base), rsa_key)


async def test_repeat_forwards_the_same_identity(gateway: Any, rsa_key: Any) -> None:
    rt, _ = gateway
    conn = Conn(rt)
    t = token(rsa_key, sub="alice")
    first, answer = await conn.send("GET", "/orders/1", t)
    assert status(answer) == 200 and b"x-user: alice" in first.lower()
    for _ in range(3):
        again, answer = await conn.send("GET", "/orders/1", t)
        assert status(answer) == 200
        assert without_request_id(again) == without_request_id(first)
    assert b"authorization" not in first.lower()


async def test_repeat_after_expiry_is_401(gateway: Any, rsa_key: Any) -> None:
    rt, _ = gateway
    conn = Conn(rt)
    exp = int(time.time()) + 2
    t = token(rsa_key, exp=exp)
    await allowed_twice(conn, "/orders/1", t)
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.1)
    up, answer = await conn.send("GET", "/orders/1", t)
    assert up == b"" and status(answer) == 401
    assert b'error="invalid_token"' in answer


async def test_same_fields_other_method_is_decided_again(gateway: Any, rsa_key: Any) -> None:
    rt, _ = gateway
    conn = Conn(rt)
    t = token(rsa_key)  # orders:read only; DELETE needs orders:delete
    await allowed_twice(conn, "/orders/1", t)
    up, answer = await conn.send("DELETE", "/orders/1", t)
    assert up == b"" and status(answer) == 403
    assert b'scope="orders:delete"' in answer


async def test_same_fields_other_path_parameter_is_decided_again(gateway: Any, rsa_key: Any) -> None:
    rt, _ = gateway
    conn = Conn(rt)
    t = token(rsa_key, tenant="acme")
    await allowed_twice(conn, "/t/acme/orders", t)
    up, answer = await conn.send("GET", "/t/other/orders", t)
    assert up == b"" and status(answer) == 403


async def test_repeat_after_revocation_is_401(gateway: Any, rsa_key: Any) -> None:
    rt, _ = gateway
    conn = Conn(rt)
    t = token(rsa_key, jti="j-7")
    revoked: set[str] = set()
    rt.registry.set_revocation_check(lambda ident: ident.jti in revoked)
    await allowed_twice(conn, "/orders/1", t)
    revoked.add("j-7")
    up, answer = await conn.send("GET", "/orders/1", t)
    assert up == b"" and status(answer) == 401


async def test_repeat_after_its_key_is_removed_is_401(gateway: Any, rsa_key: Any,
                                                      rsa_other: Any) -> None:
    rt, jwks = gateway
    conn = Conn(rt)
    t = token(rsa_key)
    await allowed_twice(conn, "/orders/1", t)
    # The key set now holds another key only: the old one is gone (a rotation's last step).
    new = public_jwk(rsa_other, "RS256", "rsa2")
    jwks.write_text(json.dumps({"keys": [new]}))
    rt.registry.verifier("main").ring.replace([key_from_jwk(new, ["RS256"])])
    up, answer = await conn.send("GET", "/orders/1", t)
    assert up == b"" and status(answer) == 401


async def test_same_fields_other_query_keeps_its_query(gateway: Any, rsa_key: Any) -> None:
    rt, _ = gateway
    conn = Conn(rt)
    t = token(rsa_key)
    for page in (b"1", b"1", b"2", b""):
        target = b"/orders/1" + (b"?page=" + page if page else b"")
        up, answer = await conn.send("GET", target.decode(), t)
        assert status(answer) == 200
        assert up.startswith(b"GET " + target + b" HTTP/1.1\r\n")


async def test_anonymous_repeat_stays_anonymous_and_stripped(gateway: Any) -> None:
    rt, _ = gateway
    conn = Conn(rt)
    spoof = b"X-User: mallory\r\n"
    for _ in range(3):
        up, answer = await conn.send("GET", "/pub/a", None, spoof)
        assert status(answer) == 200 and up and b"mallory" not in up
    # the same fields with a method that needs a token: decided again, 401 without error code
    up, answer = await conn.send("POST", "/pub/a", None, spoof)
    assert up == b"" and status(answer) == 401 and b"error=" not in answer
