from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from wardgate.config import ConfigError, load_gateway

GOOD = """\
listen: "127.0.0.1:8080"
upstreams:
  - name: orders
    targets: ["http://127.0.0.1:9101", {url: "http://127.0.0.1:9102", weight: 2}]
routes:
  - name: orders
    match: {path_prefix: "/orders", methods: ["GET", "POST"]}
    upstream: orders
    auth: none
"""


def write(tmp_path, text):
    p = tmp_path / "gw.yaml"
    p.write_text(text)
    return p


def test_good_config_loads_frozen(tmp_path):
    cfg = load_gateway(str(write(tmp_path, GOOD)))
    assert cfg.upstreams[0].targets[1].weight == 2
    assert cfg.limits.max_header_bytes == 16384
    with pytest.raises(ValidationError):
        cfg.workers = 3  # type: ignore[misc]


def test_all_errors_reported_with_line_and_path(tmp_path):
    text = GOOD.replace('"127.0.0.1:8080"', '"127.0.0.1:99999"').replace(
        '"/orders"', '"orders"') + "bogus: 1\n"
    with pytest.raises(ConfigError) as exc:
        load_gateway(str(write(tmp_path, text)))
    got = {(i.line, i.path) for i in exc.value.issues}
    assert (1, "listen") in got
    assert (7, "routes[0].match.path_prefix") in got
    assert (10, "bogus") in got
    assert all(str(i).startswith(str(tmp_path / "gw.yaml")) for i in exc.value.issues)


def test_route_without_auth_is_refused(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_gateway(str(write(tmp_path, GOOD.replace("    auth: none\n", ""))))
    assert "auth: none" in str(exc.value)


def test_unknown_upstream_and_duplicate_keys(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_gateway(str(write(tmp_path, GOOD.replace("upstream: orders", "upstream: nope"))))
    assert "unknown upstream 'nope'" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_gateway(str(write(tmp_path, GOOD + "listen: \"0.0.0.0:1\"\n")))
    assert "duplicate key 'listen'" in str(exc.value)


def test_yaml_syntax_error_names_line(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_gateway(str(write(tmp_path, "listen: [\n")))
    assert exc.value.issues[0].line is not None


def test_check_config_cli(tmp_path):
    good = write(tmp_path, GOOD)
    ok = subprocess.run([sys.executable, "-m", "wardgate", "check-config", str(good)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "OK" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("workers", "x").replace("auth: none", "auth: maybe"))
    res = subprocess.run([sys.executable, "-m", "wardgate", "check-config", str(bad)],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert "routes[0].auth" in res.stderr


def test_token_cache_size_reaches_the_registry(tmp_path):
    from wardgate.gateway.runtime import Runtime

    (tmp_path / "jwks.json").write_text('{"keys": []}')
    text = GOOD.replace("    auth: none\n", '    auth: {providers: ["main"]}\n') + """\
limits: {token_cache_entries: 5}
providers:
  - {name: main, issuer: "https://issuer.test", audiences: [api], jwks_file: jwks.json}
"""
    rt = Runtime(load_gateway(str(write(tmp_path, text))))
    assert rt.registry.cache.max_entries == 5


@pytest.mark.parametrize("value", [None, "", "short"])
def test_sub_hash_key_env_must_hold_a_real_key(tmp_path, monkeypatch, value):
    from wardgate.config.gateway import AccessLogConfig

    if value is None:
        monkeypatch.delenv("WG_TEST_SUB_KEY", raising=False)
    else:
        monkeypatch.setenv("WG_TEST_SUB_KEY", value)
    with pytest.raises(ValueError, match="WG_TEST_SUB_KEY must hold at least 16 bytes"):
        AccessLogConfig.model_validate({"sub_hash_key_env": "WG_TEST_SUB_KEY"})
    monkeypatch.setenv("WG_TEST_SUB_KEY", "k" * 16)
    assert AccessLogConfig.model_validate(
        {"sub_hash_key_env": "WG_TEST_SUB_KEY"}).sub_hash_key() == b"k" * 16
    assert AccessLogConfig().sub_hash_key() is None
