"""`wardgate users|clients|keys` as a user runs them, and the issuer config model."""

from __future__ import annotations

import asyncio
import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.issuer.support import FAST_HASH, IssuerProcess, base_config
from wardgate.config.issuer import IssuerConfig
from wardgate.config.loader import ConfigError, load_file
from wardgate.issuer import tokens
from wardgate.issuer.db import open_database
from wardgate.issuer.schema import users as users_table


def _cli(cfg: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wardgate", *args, "-c", str(cfg)],
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_cli_users_clients_keys(tmp_path: Path) -> None:
    proc = IssuerProcess(base_config(tmp_path), tmp_path)
    cfg = proc.path
    r = _cli(cfg, "users", "add", "erin", "--role", "reader", "--password-stdin",
             stdin="s3cret-pw\n")
    assert r.returncode == 0, r.stderr
    assert _cli(cfg, "users", "add", "erin", "--password-stdin", stdin="x\n").returncode == 1
    assert _cli(cfg, "users", "passwd", "erin", "--password-stdin", stdin="n3w-pw\n"
                ).returncode == 0
    assert "erin\tactive\troles=reader" in _cli(cfg, "users", "list").stdout
    assert _cli(cfg, "users", "roles", "erin", "--role", "admin", "--role", "reader"
                ).returncode == 0
    assert "erin\tactive\troles=admin,reader" in _cli(cfg, "users", "list").stdout
    assert _cli(cfg, "users", "disable", "erin").returncode == 0
    assert "erin\tdisabled" in _cli(cfg, "users", "list").stdout
    assert _cli(cfg, "users", "disable", "nobody").returncode == 1

    r = _cli(cfg, "clients", "add", "svc", "--grant", "client_credentials", "--scope", "a:b",
             "--audience", "api")
    assert r.returncode == 0 and "client_secret: " in r.stdout
    assert "svc\tclient_secret_basic" in _cli(cfg, "clients", "list").stdout
    bad = _cli(cfg, "clients", "add", "p", "--auth-method", "none", "--grant",
               "client_credentials")
    assert bad.returncode == 1 and "public client" in bad.stderr

    r = _cli(cfg, "keys", "generate", "--algorithm", "EdDSA")
    assert r.returncode == 0, r.stderr
    assert _cli(cfg, "keys", "generate").returncode == 1  # one already signs
    assert _cli(cfg, "keys", "rotate", "--lead", "60").returncode == 0
    listing = _cli(cfg, "keys", "list").stdout.splitlines()
    assert [line.split("\t")[2] for line in listing] == ["signing", "next"]
    for f in (tmp_path / "keys").iterdir():
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
        assert "PRIVATE KEY" in f.read_text()
        assert f.read_text() not in r.stdout + r.stderr  # never printed


def test_cli_reports_config_errors_with_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("listen: 127.0.0.1:9000\ntokens:\n  access_ttl_s: -5\n")
    r = _cli(cfg, "users", "list")
    assert r.returncode == 2 and f"{cfg}:3: tokens.access_ttl_s" in r.stderr


def test_config_defaults_and_validation(tmp_path: Path) -> None:
    c = IssuerConfig()
    assert c.listen == "127.0.0.1:9000" and c.tokens.access_ttl_s == 600
    assert c.keys.algorithm == "RS256"
    (tmp_path / "i.yaml").write_text("database_url: sqlite:///rel/issuer.db\n")
    loaded = load_file(IssuerConfig, tmp_path / "i.yaml")
    assert loaded.database_url == f"sqlite:///{tmp_path}/rel/issuer.db"
    for bad in ("database_url: mysql://x\n", "issuer: ftp://x\n",
                "keys: {algorithm: HS256}\n", "roles: {r: ['a b']}\n", "unknown_key: 1\n"):
        (tmp_path / "b.yaml").write_text(bad)
        with pytest.raises(ConfigError):
            load_file(IssuerConfig, tmp_path / "b.yaml")


@pytest.mark.parametrize("claims", [
    {"exp": math.inf}, {"exp": math.nan}, {"exp": 1e30}, {"exp": True}, {"exp": "123"},
    {"iat": -1}, {"sub": 5}, {"aud": []}, {"aud": [1]}, {"roles": "admin"},
])
def test_claims_are_type_checked_before_signing(claims: dict) -> None:
    with pytest.raises(tokens.ClaimTypeError):
        tokens.check_claims(claims)


def test_login_rehashes_when_argon2_parameters_change(make_issuer) -> None:  # type: ignore[no-untyped-def]
    stronger = dict(FAST_HASH, time_cost=2)
    old = make_issuer(start=False)
    old.add_user("frank", "pw-frank", [])  # hashed with time_cost=1
    iss = make_issuer(start=False, password_hash=stronger,
                      database_url=old.cfg.database_url)
    iss.start()
    with iss.client() as http:
        assert iss.login(http, "frank", "pw-frank").status_code == 200

    async def stored() -> str:
        db = await open_database(iss.cfg.database_url)
        async with db.begin() as conn:
            h = (await conn.execute(select(users_table.c.password_hash))).scalar_one()
        await db.close()
        return str(h)
    h = asyncio.run(stored())
    assert h.startswith("$argon2id$") and ",t=2," in h
