"""Admin-listener helpers: a config with an admin section, scrape and parse /metrics."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.gateway import free_port

TOKEN = "test-admin-token-0123456789abcdef"
TOKEN_ENV = "WARDGATE_TEST_ADMIN_TOKEN"


def with_admin(cfg: dict[str, Any], **admin: Any) -> dict[str, Any]:
    port = free_port()
    cfg["admin"] = {"listen": f"127.0.0.1:{port}", "token_env": TOKEN_ENV, **admin}
    return cfg


def admin_port(cfg: dict[str, Any]) -> int:
    return int(cfg["admin"]["listen"].rsplit(":", 1)[1])


def admin_get(cfg: dict[str, Any], path: str, token: str | None = TOKEN, method: str = "GET",
              accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection("127.0.0.1", admin_port(cfg), timeout=60)
    h = {}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if accept:
        h["Accept"] = accept
    c.request(method, path, headers=h)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def admin_json(cfg: dict[str, Any], path: str, method: str = "GET") -> Any:
    status, _, body = admin_get(cfg, path, method=method)
    assert status == 200, (status, body)
    return json.loads(body)


def scrape(cfg: dict[str, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}, via prometheus_client."""
    status, headers, body = admin_get(cfg, "/metrics", token=None)
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_admin(cfg: dict[str, Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            admin_get(cfg, "/metrics", token=None)
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("admin listener never answered")
