"""`wardgate token inspect`: decode, then judge against a real config and route."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from wardgate.cli import main

from .helpers import ISS, claims, public_jwk, sign


@pytest.fixture
def config(tmp_path: Path, rsa_key: Any) -> Path:
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public_jwk(rsa_key, "RS256", "k1")]}))
    doc = {
        "providers": [{"name": "main", "issuer": ISS, "audiences": ["api"],
                       "algorithms": ["RS256"], "jwks_file": "jwks.json",
                       "max_lifetime_s": None}],
        "upstreams": [{"name": "u", "targets": ["http://127.0.0.1:9101"]}],
        "routes": [
            {"name": "public", "match": {"path_prefix": "/health"}, "upstream": "u", "auth": "none"},
            {"name": "tenant", "match": {"path_prefix": "/t/{tenant}"}, "upstream": "u",
             "auth": {"providers": ["main"], "require": {
                 "scopes": ["orders:read"],
                 "claims": [{"claim": "tenant", "equals_param": "tenant"}]}},
             "claims_to_headers": {"sub": "X-User-Id"}},
        ],
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _token(key: Any, **over: Any) -> str:
    import time

    now = int(time.time())
    body = claims(**dict({"iat": now, "exp": now + 3600, "scope": "orders:read", "tenant": "acme"},
                         **over))
    return sign({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}, body, key).decode()


def test_inspect_without_config_prints_claims(rsa_key: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "inspect", _token(rsa_key)]) == 0
    out = capsys.readouterr().out
    assert '"sub": "alice"' in out and "unverified" in out and "exp:" in out


def test_inspect_accepts_on_matching_route(rsa_key: Any, config: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["token", "inspect", _token(rsa_key), "--config", str(config),
                 "--method", "get", "--path", "/t/acme/orders"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ACCEPT on route tenant" in out and "x-user-id: alice" in out


def test_inspect_prints_the_logged_sub_hash_only_under_the_configured_key(
        rsa_key: Any, config: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib
    import hmac

    args = ["token", "inspect", _token(rsa_key), "--config", str(config), "--path", "/t/acme"]
    assert main(args) == 0
    assert "sub hash keyed per gateway run" in capsys.readouterr().out
    doc = yaml.safe_load(config.read_text())
    doc["access_log"] = {"sub_hash_key_env": "WG_TEST_SUB_KEY"}
    config.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("WG_TEST_SUB_KEY", "k" * 20)
    assert main(args) == 0
    expected = hmac.new(b"k" * 20, b"main\0alice", hashlib.sha256).hexdigest()[:16]
    assert f"sub hash {expected}" in capsys.readouterr().out


def test_inspect_says_why_not(rsa_key: Any, rsa_other: Any, config: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (_token(rsa_key), "/t/other/x", "REJECT 403 (forbidden)"),
        (_token(rsa_key, scope="x"), "/t/acme", 'scope="orders:read"'),
        (_token(rsa_other), "/t/acme", "REJECT 401 (bad_signature)"),
        (_token(rsa_key, exp=1), "/t/acme", "(expired)"),
    ]
    for token, path, expected in cases:
        code = main(["token", "inspect", token, "-c", str(config), "--path", path])
        out = capsys.readouterr().out
        assert code == 1 and expected in out, out


def test_inspect_from_stdin_and_malformed(rsa_key: Any, config: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(_token(rsa_key) + "\n"))
    assert main(["token", "inspect", "-", "-c", str(config), "--route", "tenant",
                 "--path", "/t/acme"]) == 0
    assert main(["token", "inspect", "a.b"]) == 1
    assert "malformed" in capsys.readouterr().out


def test_inspect_public_and_unmatched_routes(rsa_key: Any, config: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "inspect", _token(rsa_key), "-c", str(config), "--path", "/health"]) == 0
    assert "public" in capsys.readouterr().out
    assert main(["token", "inspect", _token(rsa_key), "-c", str(config), "--path", "/nope"]) == 2
