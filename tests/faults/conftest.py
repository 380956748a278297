"""Fixtures of the fault suite: real upstream processes, real gateway processes with an admin
listener, and helpers to read what the gateway itself reports (GET /admin/upstreams)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.admin.support import TOKEN, TOKEN_ENV, admin_get, with_admin
from tests.support.upstream_proc import UpstreamProcess


@pytest.fixture(autouse=True)
def _admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


@pytest.fixture
def upstream_procs() -> Iterator[Callable[[str], UpstreamProcess]]:
    started: list[UpstreamProcess] = []

    def make(name: str) -> UpstreamProcess:
        up = UpstreamProcess(name)
        started.append(up)
        return up

    yield make
    for up in started:
        up.stop()




def fault_config(targets: list[str], *, health: dict[str, Any] | None = None,
                 route: dict[str, Any] | None = None, workers: int = 1,
                 **upstream: Any) -> dict[str, Any]:
    """One public route to one upstream, with short ejections so a case fits in seconds."""
    up: dict[str, Any] = {"name": "up", "targets": targets,
                          "health": {"max_failures": 3, "ejection_s": 1, "max_ejection_s": 2,
                                     **(health or {})},
                          "timeouts": {"connect_s": 1, "read_s": 5}}
    up.update(upstream)
    r: dict[str, Any] = {"name": "all", "match": {"path_prefix": "/"}, "upstream": "up",
                         "auth": "none"}
    r.update(route or {})
    return with_admin({"workers": workers, "upstreams": [up], "routes": [r],
                       "timeouts": {"drain_s": 5}})


def target_states(cfg: dict[str, Any]) -> dict[str, str]:
    """url -> state (`healthy`, `half_open`, `ejected`) as GET /admin/upstreams reports it."""
    status, _, body = admin_get(cfg, "/admin/upstreams")
    assert status == 200, body
    return {t["url"]: t["state"] for u in json.loads(body)["upstreams"] for t in u["targets"]}


def wait_state(cfg: dict[str, Any], url: str, states: set[str], timeout: float = 10.0) -> float:
    """Poll the admin API until target `url` is in one of `states`; returns when it was seen."""
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        seen = target_states(cfg)
        if seen.get(url) in states:
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"{url} never reached {states}: {seen}")


def target_view(cfg: dict[str, Any], url: str) -> dict[str, Any]:
    """The admin API's entry for one target (with its per-worker `ejections`, `failures`, ...)."""
    status, _, body = admin_get(cfg, "/admin/upstreams")
    assert status == 200, body
    for u in json.loads(body)["upstreams"]:
        for t in u["targets"]:
            if t["url"] == url:
                return dict(t)
    raise AssertionError(f"no target {url} in {body!r}")
