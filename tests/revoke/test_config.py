"""`revocation:` (gateway) and `revocations:` (issuer) are validated at load; `wardgate
check-config` prints the reason, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from wardgate.config import load_gateway
from wardgate.config.issuer import IssuerConfig
from wardgate.config.loader import ConfigError

TOKEN = "0123456789abcdef0123"


def _cfg(tmp_path: Path, revocation: dict[str, Any] | None, *, providers: int = 1,
         route_policy: str | None = None, state: dict[str, Any] | None = None) -> Path:
    auth: dict[str, Any] = {"providers": ["main"]}
    if route_policy is not None:
        auth["on_feed_error"] = route_policy
    cfg: dict[str, Any] = {
        "providers": [{"name": n, "issuer": f"http://127.0.0.1:900{i}",
                       "jwks_uri": f"http://127.0.0.1:900{i}/jwks", "audiences": ["api"]}
                      for i, n in enumerate(["main", "partner"][:providers])],
        "upstreams": [{"name": "up", "targets": ["http://127.0.0.1:9"]}],
        "routes": [{"name": "api", "upstream": "up", "auth": auth}],
    }
    if revocation is not None:
        cfg["revocation"] = revocation
    if state is not None:
        cfg["state"] = state
    p = tmp_path / "gw.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _errors(path: Path) -> str:
    with pytest.raises(ConfigError) as exc:
        load_gateway(str(path))
    return "\n".join(str(i) for i in exc.value.issues)


@pytest.fixture
def token_file(tmp_path: Path) -> str:
    p = tmp_path / "feed.token"
    p.write_text(TOKEN)
    return str(p)


def test_polling_config_loads(tmp_path: Path, token_file: str) -> None:
    cfg = load_gateway(str(_cfg(tmp_path, {"poll_url": "http://127.0.0.1:9000/revocations",
                                           "token_file": token_file}, route_policy="deny")))
    assert cfg.revocation_source() == "poll" and cfg.revocation is not None
    assert cfg.revocation.token() == TOKEN and cfg.revocation.on_feed_error == "allow"


def test_redis_is_chosen_when_state_is_set(tmp_path: Path) -> None:
    cfg = load_gateway(str(_cfg(tmp_path, {}, state={"redis_url": "redis://127.0.0.1:6379/0"})))
    assert cfg.revocation_source() == "redis"


@pytest.mark.parametrize(("revocation", "kw", "needle"), [
    ({}, {}, "polling needs poll_url"),
    ({"poll_url": "http://127.0.0.1:9000/revocations"}, {}, "token_env or token_file"),
    ({"poll_url": "http://issuer.example/revocations", "token_file": "T"}, {}, "https"),
    ({"poll_url": "ftp://x/revocations"}, {}, "http(s) URL"),
    ({"source": "redis"}, {}, "state.redis_url is not set"),
    ({"provider": "nope", "source": "redis"}, {"state": {"redis_url": "redis://127.0.0.1:1"}},
     "unknown provider"),
    ({"source": "redis"}, {"providers": 2, "state": {"redis_url": "redis://127.0.0.1:1"}},
     "name the provider"),
    ({"on_feed_error": "maybe"}, {}, "on_feed_error"),
    ({"max_staleness_s": 0}, {}, "max_staleness_s"),
    ({"typo": 1}, {}, "typo"),
    (None, {"route_policy": "deny"}, "needs a revocation: section"),
])
def test_bad_gateway_configs(tmp_path: Path, token_file: str, revocation: dict[str, Any] | None,
                             kw: dict[str, Any], needle: str) -> None:
    if revocation is not None and revocation.get("token_file") == "T":
        revocation["token_file"] = token_file
    assert needle in _errors(_cfg(tmp_path, revocation, **kw))


def test_short_feed_token_refused(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abc")
    assert "at least 16" in _errors(_cfg(tmp_path, {
        "poll_url": "http://127.0.0.1:9000/revocations", "token_file": str(short)}))


def test_check_config_prints_the_reason(tmp_path: Path) -> None:
    p = _cfg(tmp_path, {"source": "redis"})
    r = subprocess.run([sys.executable, "-m", "wardgate", "check-config", str(p)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "state.redis_url is not set" in out and "Traceback" not in out


def test_issuer_revocations_section(tmp_path: Path) -> None:
    f = tmp_path / "t"
    f.write_text(TOKEN)
    cfg = IssuerConfig(revocations={"token_file": str(f)},
                       state={"redis_url": "redis://127.0.0.1:6379/0"})
    assert cfg.revocations.token() == TOKEN and cfg.state.urls()
    with pytest.raises(ValueError, match="relay_interval_s"):
        IssuerConfig(revocations={"relay_interval_s": 0})
