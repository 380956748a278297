"""`tracing:` is validated at load with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wardgate.config import ConfigError, load_gateway

BASE = {"upstreams": [{"name": "up", "targets": ["http://127.0.0.1:9101"]}],
        "routes": [{"name": "all", "upstream": "up", "auth": "none"}]}


def load(tmp_path: Path, tracing: object):
    p = tmp_path / "g.yaml"
    p.write_text(yaml.safe_dump({**BASE, "tracing": tracing}))
    return load_gateway(str(p))


def test_defaults(tmp_path):
    cfg = load(tmp_path, {}).tracing
    assert cfg is not None and cfg.otlp_endpoint is None and cfg.ratio == 0.0
    assert cfg.trust_inbound == "any" and cfg.service_name == "wardgate"
    cfg = load(tmp_path, {"otlp_endpoint": "http://127.0.0.1:4318/v1/traces"}).tracing
    assert cfg is not None and cfg.ratio == 1.0


def test_absent_section_means_no_tracing(tmp_path):
    p = tmp_path / "g.yaml"
    p.write_text(yaml.safe_dump(BASE))
    assert load_gateway(str(p)).tracing is None


@pytest.mark.parametrize(("tracing", "message"), [
    ({"otlp_endpoint": "127.0.0.1:4318"}, "http:// or https://"),
    ({"otlp_endpoint": "ftp://127.0.0.1/v1/traces"}, "http:// or https://"),
    ({"otlp_endpoint": "http://u:p@127.0.0.1:4318/v1/traces"}, "credentials"),
    ({"otlp_endpoint": "http://127.0.0.1:99999/v1/traces"}, "port"),
    ({"sample_ratio": 1.5}, "less than or equal to 1"),
    ({"sample_ratio": -0.1}, "greater than or equal to 0"),
    ({"trust_inbound": "everyone"}, "any"),
    ({"batch_size": 100, "queue_size": 10}, "batch_size (100) must not exceed queue_size"),
    ({"queue_size": 0}, "greater than or equal to 1"),
    ({"flush_interval_ms": 1}, "greater than or equal to 10"),
    ({"service_name": ""}, "at least 1"),
    ({"enabled": True}, "enabled"),
])
def test_bad_values_are_refused_with_the_key(tmp_path, tracing, message):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, tracing)
    text = str(err.value) + " ".join(str(i) for i in err.value.issues)
    assert "tracing" in text and message in text


def test_check_config_warns_about_tracing_that_does_little(tmp_path):
    from wardgate.config.check import config_warnings

    cfg = load(tmp_path, {"trust_inbound": "trusted_proxies"})
    assert any("trusted_proxies is empty" in w for w in config_warnings(cfg))
    cfg = load(tmp_path, {"otlp_endpoint": "http://127.0.0.1:4318/v1/traces", "sample_ratio": 0})
    assert any("sample_ratio 0" in w for w in config_warnings(cfg))
    assert config_warnings(load(tmp_path, {})) == []
