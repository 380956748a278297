"""`dpop:` and `auth.dpop` are validated at load; `wardgate check-config` says what is wrong
(never a traceback) and warns about per-worker replay caches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from wardgate.config.issuer import IssuerConfig


def write(tmp_path: Path, dpop: dict[str, Any] | None = None, mode: Any = "required",
          **top: Any) -> Path:
    cfg: dict[str, Any] = {
        "providers": [{"name": "main", "issuer": "https://issuer.example", "audiences": ["api"],
                       "jwks_uri": "https://issuer.example/jwks.json"}],
        "upstreams": [{"name": "up", "targets": ["http://127.0.0.1:9"]}],
        "routes": [{"name": "api", "upstream": "up",
                    "auth": {"providers": ["main"], "dpop": mode}}],
        **top,
    }
    if dpop is not None:
        cfg["dpop"] = dpop
    p = tmp_path / "gw.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wardgate", "check-config", str(path)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("dpop", "mode", "words"), [
    ({"algorithms": ["HS256"]}, "required", "unsupported DPoP algorithm"),
    ({"algorithms": ["none"]}, "required", "unsupported DPoP algorithm"),
    ({"algorithms": []}, "required", "at least 1"),
    ({"max_age_s": 0}, "required", "max_age_s"),
    ({"on_store_error": "allow"}, "required", "on_store_error"),
    ({"nonce": {"secret_env": "WG_TEST_UNSET_NONCE_KEY"}}, "required", "at least 16 bytes"),
    (None, "sometimes", "dpop"),
])
def test_bad_dpop_config_is_a_clear_error(tmp_path: Path, dpop: Any, mode: str,
                                          words: str) -> None:
    r = check(write(tmp_path, dpop, mode))
    assert r.returncode == 1
    assert words in r.stderr and "Traceback" not in r.stderr


def test_valid_config_and_the_worker_warning(tmp_path: Path) -> None:
    r = check(write(tmp_path, {"nonce": {"lifetime_s": 60}}, workers=2))
    assert r.returncode == 0, r.stderr
    assert "replay cache" in r.stderr
    r = check(write(tmp_path, {}, workers=2, state={"redis_url": "redis://127.0.0.1:6379/0"}))
    assert r.returncode == 0 and "replay cache" not in r.stderr


def test_issuer_dpop_config() -> None:
    assert IssuerConfig().dpop.algorithms == ["ES256", "EdDSA", "RS256", "PS256"]
    with pytest.raises(ValueError, match="unsupported DPoP algorithm"):
        IssuerConfig.model_validate({"dpop": {"algorithms": ["HS256"]}})
