"""The in-process issuer the demo uses: start in a thread, serve, stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.issuer.support import FAST_HASH, free_port
from wardgate.config.issuer import IssuerConfig
from wardgate.issuer import admin
from wardgate.issuer.server import start_background


# In-process, pytest's per-test warning filters replace the issuer's module-level one.
@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
def test_background_issuer_for_the_demo(tmp_path: Path) -> None:
    port = free_port()
    cfg = IssuerConfig(listen=f"127.0.0.1:{port}", issuer=f"http://127.0.0.1:{port}",
                       database_url=f"sqlite:///{tmp_path / 'demo.db'}",
                       keys={"dir": str(tmp_path / "keys"), "algorithm": "EdDSA"},
                       password_hash=FAST_HASH, roles={"reader": ["orders:read"]})
    asyncio.run(admin.add_user(cfg, "alice", "wonderland", ["reader"]))
    running = start_background(cfg)
    try:
        r = httpx.post(running.url + "/login",
                       json={"username": "alice", "password": "wonderland"})
        assert r.status_code == 200 and r.json()["scope"] == "orders:read"
    finally:
        running.stop()
    assert not running._thread.is_alive()
