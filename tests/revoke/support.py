"""Helpers for the revocation tests: an issuer with a feed token, gateway configs, clients."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx

from tests.issuer.support import IssuerProcess, base_config

FEED_TOKEN = "feed-token-for-tests-0123456789"


def make_issuer(workdir: Path, redis_url: str | None = None, **overrides: Any) -> IssuerProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    token_file = workdir / "feed.token"
    token_file.write_text(FEED_TOKEN + "\n")
    extra: dict[str, Any] = {"revocations": {"token_file": str(token_file),
                                             "relay_interval_s": 0.05}}
    if redis_url is not None:
        extra["state"] = {"redis_url": redis_url, "timeout_ms": 500}
    extra.update(overrides)
    proc = IssuerProcess(base_config(workdir, **extra), workdir)
    proc.add_user("alice", "correct horse", ["reader"])
    proc.add_user("bob", "battery staple", ["admin"])
    proc.feed_token_file = token_file  # type: ignore[attr-defined]
    return proc


def gateway_config(issuer: IssuerProcess, upstream_url: str, *, workers: int = 1,
                   redis_url: str | None = None, admin_port: int | None = None,
                   **revocation: Any) -> dict[str, Any]:
    rv: dict[str, Any] = {"max_staleness_s": 3, "poll_interval_s": 0.1}
    if redis_url is None:
        rv.update(poll_url=issuer.url + "/revocations",
                  token_file=str(issuer.feed_token_file))  # type: ignore[attr-defined]
    rv.update(revocation)
    cfg: dict[str, Any] = {
        "workers": workers,
        "providers": [{"name": "main", "issuer": issuer.url, "audiences": ["api"],
                       "jwks_uri": issuer.url + "/.well-known/jwks.json"}],
        "upstreams": [{"name": "orders", "targets": [upstream_url]}],
        "routes": [
            {"name": "orders", "match": {"path_prefix": "/orders"}, "upstream": "orders",
             "auth": {"providers": ["main"]}},
            {"name": "strict", "match": {"path_prefix": "/strict"}, "upstream": "orders",
             "auth": {"providers": ["main"], "on_feed_error": "deny"}},
        ],
        "revocation": rv,
    }
    if redis_url is not None:
        cfg["state"] = {"redis_url": redis_url}
    if admin_port is not None:
        cfg["admin"] = {"listen": f"127.0.0.1:{admin_port}"}
    return cfg


def login(issuer: IssuerProcess, user: str = "alice",
          password: str = "correct horse") -> dict[str, Any]:
    with issuer.client() as http:
        r = issuer.login(http, user, password)
        assert r.status_code == 200, r.text
        return dict(r.json())


def client_token(issuer: IssuerProcess, client_id: str, secret: str) -> str:
    with issuer.client() as http:
        r = http.post("/token", data={"grant_type": "client_credentials"},
                      auth=(client_id, secret))
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


def status(port: int, token: str, path: str = "/orders/1") -> int:
    return httpx.get(f"http://127.0.0.1:{port}{path}",
                     headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code


def wait_refused(port: int, token: str, timeout: float = 2.0, path: str = "/orders/1",
                 in_a_row: int = 10) -> float:
    """Seconds until the gateway answers 401 for `token` on every worker (loose bound: a
    loaded machine): the time of the last 200 seen before `in_a_row` 401s in a row on new
    connections, which the kernel spreads over the workers (one worker still accepting the
    token shows as a 200 among them)."""
    start = time.monotonic()
    last_ok = start
    run = 0
    while run < in_a_row:
        code = status(port, token, path)
        now = time.monotonic()
        if code == 401:
            run += 1
            continue
        assert code == 200, code
        run, last_ok = 0, now
        if now - start > timeout:
            raise AssertionError(f"still {code} after {timeout}s")
        time.sleep(0.02)
    return last_ok - start


class KeepAlive:
    """One kept-alive HTTP/1.1 connection to the gateway (raw socket: the same connection for
    every request, so the connection's auth memo is in play)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def get(self, token: str, path: str = "/orders/1") -> int:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}"
                          "\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            self.buf += chunk
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            rest += chunk
        self.buf = rest[length:]
        return int(head.split(b" ", 2)[1])

    def close(self) -> None:
        self.sock.close()
