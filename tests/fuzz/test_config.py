"""Config loading under generated files: a valid gateway file mutated (keys dropped, values
replaced by other JSON values, keys added) and arbitrary text. The loader either returns a
config or raises ConfigError (what `wardgate check-config` prints as FILE:LINE: path: message);
a few examples go through the real CLI too: exit 0 or 1, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import fuzz_settings
from wardgate.config.gateway import GatewayConfig
from wardgate.config.loader import ConfigError, load_file

VALID: dict[str, Any] = {
    "listen": "127.0.0.1:8080", "workers": 1,
    "limits": {"max_header_bytes": "16KiB", "max_pipelined": 32},
    "timeouts": {"header_s": 10, "keepalive_s": 60},
    "providers": [{"name": "main", "issuer": "http://127.0.0.1:9000", "audiences": ["api"],
                   "algorithms": ["RS256"], "jwks_uri": "http://127.0.0.1:9000/jwks.json",
                   "refresh": {"min_interval_s": 60, "max_stale_s": 3600}}],
    "upstreams": [{"name": "up", "targets": ["http://127.0.0.1:9101"], "balancer": "round_robin",
                   "health": {"max_failures": 3, "ejection_s": 10,
                              "error_rate": {"threshold": 0.5, "window_s": 10}},
                   "circuit_breaker": {"max_requests": 10, "retry_budget": {"percent": 20}}}],
    "routes": [{"name": "r", "match": {"path_prefix": "/"}, "upstream": "up",
                "auth": {"providers": ["main"]}, "timeouts": {"total_s": 5},
                "rate_limits": [{"name": "l", "key": "sub", "rate": "10/s", "burst": 5}]}],
}

_scalar = st.none() | st.booleans() | st.integers(-2**40, 2**40) | \
    st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | \
    st.sampled_from(["64KiB", "-1", "1e400", "http://x", "*", "{name}", "0x10"])
_value: Any = st.recursive(_scalar, lambda c: st.lists(c, max_size=3)
                           | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=6)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


ALL = _paths(VALID)


def _mutate(doc: Any, path: tuple, op: str, value: Any) -> Any:
    import copy

    doc = copy.deepcopy(doc)
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    if op == "drop" and isinstance(parent, dict):
        del parent[last]
    elif op == "add" and isinstance(parent, dict):
        parent[f"x_{last}"] = value
    else:
        parent[last] = value
    return doc


_mutation = st.tuples(st.sampled_from(ALL), st.sampled_from(["drop", "set", "set", "add"]),
                      _value)


def _load(tmp: Path, text: str) -> None:
    path = tmp / "gateway.yaml"
    path.write_text(text)
    try:
        load_file(GatewayConfig, path)
    except ConfigError as exc:
        assert str(exc), "a ConfigError names its problems"


@fuzz_settings()
@given(mutations=st.lists(_mutation, min_size=1, max_size=4))
def test_mutated_files_load_or_raise_config_error(tmp_path_factory, mutations) -> None:
    doc: Any = VALID
    for path, op, value in mutations:
        try:
            doc = _mutate(doc, path, op, value)
        except (KeyError, IndexError, TypeError):
            continue
    _load(tmp_path_factory.mktemp("cfg"), yaml.safe_dump(doc, sort_keys=False))


@fuzz_settings()
@given(text=st.text(max_size=200) | st.sampled_from(
    ["routes: &a [*a]", "a: !!python/object:os.system x", "listen: [", "\t- x", "{a: 1, a: 2}",
     "upstreams: ~", "%YAML 9.9\n---\n", "a: " + "[" * 200]))
def test_arbitrary_text_loads_or_raises_config_error(tmp_path_factory, text: str) -> None:
    _load(tmp_path_factory.mktemp("cfg"), text)


def test_the_unmutated_file_is_valid(tmp_path) -> None:
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(VALID))
    load_file(GatewayConfig, tmp_path / "g.yaml")


@fuzz_settings(0.1)
@given(mutations=st.lists(_mutation, min_size=1, max_size=3))
def test_check_config_cli_never_prints_a_traceback(tmp_path_factory, mutations) -> None:
    doc: Any = VALID
    for path, op, value in mutations:
        try:
            doc = _mutate(doc, path, op, value)
        except (KeyError, IndexError, TypeError):
            continue
    path = tmp_path_factory.mktemp("cli") / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    r = subprocess.run([sys.executable, "-m", "wardgate", "check-config", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode in (0, 1), (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stdout + r.stderr, r.stderr[-2000:]
