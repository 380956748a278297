"""`detection:` and `routes[].detection` are validated at load; `wardgate check-config`
prints the problem (file, line, key), never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from wardgate.config import load_gateway
from wardgate.config.gateway import GatewayConfig
from wardgate.config.loader import ConfigError

AUTH = {"providers": ["main"]}


def write(tmp_path: Path, detection: Any, route: dict[str, Any] | None = None,
          auth: Any = None) -> Path:
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    r: dict[str, Any] = {"name": "api", "upstream": "up", "auth": auth or AUTH, **(route or {})}
    cfg: dict[str, Any] = {
        "providers": [{"name": "main", "issuer": "https://i.example", "audiences": ["api"],
                       "jwks_file": "jwks.json"}],
        "upstreams": [{"name": "up", "targets": ["http://127.0.0.1:9"]}],
        "routes": [r]}
    if detection is not None:
        cfg["detection"] = detection
    p = tmp_path / "gw.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def load(tmp_path: Path, *args: Any, **kw: Any) -> GatewayConfig:
    return load_gateway(str(write(tmp_path, *args, **kw)))


def errors(tmp_path: Path, *args: Any, **kw: Any) -> str:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, *args, **kw)
    return "\n".join(str(i) for i in exc.value.issues)


def test_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, {"enabled": True, "action": "log"})
    d = cfg.detection
    assert d is not None and d.action == "log" and not d.dry_run and d.deny_s == 300
    assert d.replay.switch_score == 3 and d.rate.min_requests == 100
    assert load(tmp_path, None).detection is None  # absent: off


def test_route_override(tmp_path: Path) -> None:
    cfg = load(tmp_path, {"action": "log"}, {"detection": {"action": "deny"}})
    rd = cfg.routes[0].detection
    assert rd is not None and rd.action == "deny" and rd.enabled


@pytest.mark.parametrize(("detection", "route", "auth", "message"), [
    ({"action": "block"}, None, None, "detection.action"),
    ({"allow_networks": ["10.0.0.0/33"]}, None, None, "expected an IP address or CIDR"),
    ({"header": "Risk"}, None, None, "detection.header"),
    ({"replay": {"switch_score": 0}}, None, None, "detection.replay.switch_score"),
    ({"rate": {"alpha": 2}}, None, None, "detection.rate.alpha"),
    ({"typo": 1}, None, None, "detection.typo"),
    (None, {"detection": {"action": "deny"}}, None, "need the top-level detection section"),
    ({}, {"detection": {"action": "deny"}}, "none", "auth: none has no detection"),
    ({}, {"detection": {"action": "revoke"}}, None, "routes[0].detection.action"),
])
def test_bad_values_are_named(tmp_path: Path, detection: Any, route: Any, auth: Any,
                              message: str) -> None:
    assert message in errors(tmp_path, detection, route, auth)


def test_check_config_prints_the_problem_not_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, {"action": "block"})
    r = subprocess.run([sys.executable, "-m", "wardgate", "check-config", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "detection.action" in r.stderr and "Traceback" not in r.stderr
    ok = write(tmp_path, {"action": "deny"})
    r = subprocess.run([sys.executable, "-m", "wardgate", "check-config", str(ok)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(("detection", "where"), [
    ({"action": "block"}, "detection.action"),
    ({"allow_networks": ["10.0.0.0/33"]}, "detection.allow_networks"),
    ({"stuffing": {"min_usernames": 1}}, "detection.stuffing.min_usernames"),
    ({"stuffing": {"min_failure_ratio": 1.5}}, "detection.stuffing.min_failure_ratio"),
    ({"spraying": {"min_networks": 0}}, "detection.spraying.min_networks"),
    ({"spraying": {"password_ratio": 0}}, "detection.spraying.password_ratio"),
    ({"stufing": {}}, "detection.stufing"),
])
def test_issuer_detection_is_validated_by_check_config(tmp_path: Path, detection: Any,
                                                       where: str) -> None:
    p = tmp_path / "issuer.yaml"
    p.write_text(yaml.safe_dump({"issuer": "http://127.0.0.1:9000", "detection": detection}))
    r = subprocess.run([sys.executable, "-m", "wardgate", "check-config", str(p)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and where in r.stderr and "Traceback" not in r.stderr, r.stderr
    p.write_text(yaml.safe_dump({"issuer": "http://127.0.0.1:9000",
                                 "detection": {"action": "deny", "allow_networks": ["10.0.0.0/8"]}}))
    r = subprocess.run([sys.executable, "-m", "wardgate", "check-config", str(p)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
