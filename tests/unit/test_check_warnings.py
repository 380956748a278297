"""`wardgate check-config` warns about settings that will not do what their author expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from wardgate.config.check import check_file


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], **extra: Any) -> tuple[int, str]:
    cfg = {"upstreams": [{"name": "up", "targets": ["http://127.0.0.1:9"]}],
           "routes": [{"name": "r", "upstream": "up", "auth": "none"}], **extra}
    p = tmp_path / "g.yaml"
    p.write_text(yaml.safe_dump(cfg))
    rc = check_file(str(p))
    return rc, capsys.readouterr().err


def test_a_plain_file_has_no_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, capsys) == (0, "")


def test_admin_without_a_token(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WG_TEST_ADMIN_TOKEN", raising=False)
    rc, err = run(tmp_path, capsys, admin={"listen": "127.0.0.1:8081"})
    assert rc == 0 and "warning: admin: no token configured" in err
    monkeypatch.setenv("WG_TEST_ADMIN_TOKEN", "x" * 32)
    rc, err = run(tmp_path, capsys, admin={"listen": "127.0.0.1:8081",
                                           "token_env": "WG_TEST_ADMIN_TOKEN"})
    assert (rc, err) == (0, "")


def test_state_without_a_global_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = run(tmp_path, capsys, state={"redis_url": "redis://127.0.0.1:6379/0"})
    assert rc == 0 and "warning: state: no route has a scope: global rate limit" in err
    routes = [{"name": "r", "upstream": "up", "auth": "none",
               "rate_limits": [{"name": "g", "rate": "5/s", "scope": "global"}]}]
    rc, err = run(tmp_path, capsys, state={"redis_url": "redis://127.0.0.1:6379/0"}, routes=routes)
    assert rc == 0 and err == ""
