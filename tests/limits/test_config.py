"""`routes[].rate_limits` and `state:` are validated at load with clear messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from wardgate.config import load_gateway
from wardgate.config.loader import ConfigError


def load(tmp_path: Path, limits: list[dict[str, Any]], state: dict[str, Any] | None = None):
    cfg: dict[str, Any] = {
        "upstreams": [{"name": "up", "targets": ["http://127.0.0.1:9"]}],
        "routes": [{"name": "api", "upstream": "up", "auth": "none", "rate_limits": limits}],
    }
    if state is not None:
        cfg["state"] = state
    p = tmp_path / "gw.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return load_gateway(str(p))


def errors(tmp_path: Path, limits: list[dict[str, Any]], state: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, limits, state)
    return "\n".join(str(i) for i in exc.value.issues)


def test_a_valid_limit(tmp_path: Path) -> None:
    cfg = load(tmp_path, [{"name": "per-user", "key": "sub", "rate": "100/s", "burst": 20,
                           "scope": "global"}], {"redis_url": "redis://127.0.0.1:6379/0"})
    lim = cfg.routes[0].rate_limits[0]
    assert lim.count_period() == (100, 1) and lim.on_store_error == "allow"


def test_a_global_limit_needs_redis(tmp_path: Path) -> None:
    msg = errors(tmp_path, [{"name": "g", "rate": "1/s", "scope": "global"}])
    assert "'g' is global but state.redis_url is not set" in msg


@pytest.mark.parametrize(("limit", "words"), [
    ({"name": "a", "rate": "100"}, "expected a rate such as"),
    ({"name": "a", "rate": "0/s"}, "expected a rate such as"),
    ({"name": "a", "rate": "5/d"}, "expected a rate such as"),
    ({"name": "a", "rate": "5/s", "key": "cookie:x"}, "expected sub, client_id"),
    ({"name": "a", "rate": "5/s", "burst": -1}, "greater than or equal to 0"),
    ({"name": "a", "rate": "5/s", "scope": "cluster"}, "'local' or 'global'"),
    ({"name": "a", "rate": "5/s", "on_store_error": "maybe"}, "'allow' or 'deny'"),
    ({"name": "a b", "rate": "5/s"}, "should match pattern"),
])
def test_bad_limits(tmp_path: Path, limit: dict[str, Any], words: str) -> None:
    assert words in errors(tmp_path, [limit])


def test_duplicate_limit_names(tmp_path: Path) -> None:
    msg = errors(tmp_path, [{"name": "a", "rate": "1/s"}, {"name": "a", "rate": "2/s"}])
    assert "duplicate rate limit name(s): ['a']" in msg


@pytest.mark.parametrize(("state", "words"), [
    ({"redis_url": "http://127.0.0.1:6379"}, "expected redis:// or rediss://"),
    ({"redis_url": "redis://h:1,redis://h:2"}, "set cluster: true"),
    ({"redis_url": "redis://h:1/2", "cluster": True}, "only database 0"),
    ({"redis_url": "redis://h:1", "timeout_ms": 0}, "greater than or equal to 1"),
    ({"redis_url": "redis://h:1", "password_env": "WG_TEST_SURELY_UNSET"}, "is not set"),
])
def test_bad_state(tmp_path: Path, state: dict[str, Any], words: str) -> None:
    assert words in errors(tmp_path, [{"name": "a", "rate": "1/s"}], state)


def test_a_list_is_a_cluster_seed_list(tmp_path: Path) -> None:
    cfg = load(tmp_path, [{"name": "a", "rate": "1/s"}],
               {"redis_url": ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]})
    assert cfg.state.cluster and len(cfg.state.urls()) == 2


def test_a_password_in_the_url_never_reaches_the_message(tmp_path: Path) -> None:
    msg = errors(tmp_path, [{"name": "a", "rate": "1/s"}],
                 {"redis_url": "redis://u:hunter2secret@h:1/x"})
    assert "hunter2secret" not in msg
