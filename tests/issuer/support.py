"""Run a real issuer (`wardgate issuer`) in a subprocess on a free 127.0.0.1 port."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import yaml

from wardgate.config.issuer import IssuerConfig
from wardgate.config.loader import load_file
from wardgate.issuer import admin

# Cheap argon2 for tests: the production defaults are in the config model.
FAST_HASH = {"time_cost": 1, "memory_cost_kib": 1024, "parallelism": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_config(workdir: Path, **overrides: Any) -> dict[str, Any]:
    port = free_port()
    cfg: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "issuer": f"http://127.0.0.1:{port}",
        "database_url": f"sqlite:///{workdir / 'issuer.db'}",
        "keys": {"dir": str(workdir / "keys"), "algorithm": "RS256", "reload_interval_s": 0.5},
        "password_hash": dict(FAST_HASH),
        "throttle": {"free_failures_per_user": 3, "free_failures_per_address": 1000,
                     "base_delay_s": 0.3, "max_delay_s": 2.0},
        "roles": {"reader": ["orders:read"], "admin": ["orders:read", "orders:write"]},
    }
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return cfg


class IssuerProcess:
    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.workdir = workdir
        self.path = workdir / "issuer.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.cfg: IssuerConfig = load_file(IssuerConfig, self.path)
        self.url = self.cfg.issuer
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> IssuerProcess:
        log = open(self.workdir / "issuer.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wardgate", "issuer", "-c", str(self.path),
             "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("issuer exited: " + (self.workdir / "issuer.log").read_text())
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/.well-known/jwks.json", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("issuer did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    # -- seeding through the same admin API the CLI and the demo use --------------------------
    def add_user(self, username: str, password: str, roles: list[str]) -> int:
        return asyncio.run(admin.add_user(self.cfg, username, password, roles))

    def add_client(self, client_id: str, **kw: Any) -> str | None:
        return asyncio.run(admin.add_client(self.cfg, client_id, **kw))

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, follow_redirects=False)

    def jwks(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/.well-known/jwks.json").json())

    def verify(self, token: str, audience: str = "api", typ: str = "at+jwt") -> dict[str, Any]:
        """Verify with PyJWT (an independent JOSE implementation) against the published JWKS."""
        header = pyjwt.get_unverified_header(token)
        assert header["typ"] == typ
        keyset = pyjwt.PyJWKSet.from_dict(self.jwks())
        key = keyset[header["kid"]]
        return dict(pyjwt.decode(token, key.key, algorithms=[header["alg"]], audience=audience,
                                 issuer=self.url,
                                 options={"require": ["exp", "iat", "iss", "aud", "sub"]}))

    def login(self, http: httpx.Client, username: str, password: str,
              **extra: Any) -> httpx.Response:
        return http.post("/login", json={"username": username, "password": password, **extra})


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def set_cookies(resp: httpx.Response) -> dict[str, dict[str, str]]:
    """Parse every Set-Cookie header into name -> {attribute(lowercase): value}."""
    out: dict[str, dict[str, str]] = {}
    for raw in resp.headers.get_list("set-cookie"):
        parts = [p.strip() for p in raw.split(";")]
        name, _, value = parts[0].partition("=")
        attrs = {"value": value}
        for p in parts[1:]:
            k, _, v = p.partition("=")
            attrs[k.lower()] = v
        out[name] = attrs
    return out
