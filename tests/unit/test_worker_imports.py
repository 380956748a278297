"""What a gateway worker loads: only what its configuration uses."""

from __future__ import annotations

import subprocess
import sys


def test_a_worker_without_remote_key_sets_does_not_load_an_http_client() -> None:
    """httpx and what it pulls in cost each worker ~7.5 MB of RSS; only a provider with a
    jwks_uri or discovery needs them (tests/auth/test_sources.py covers that path)."""
    code = ("import sys, wardgate.gateway.worker, wardgate.auth.sources, wardgate.cli; "
            "print(sorted(m for m in ('httpx', 'anyio', 'h11') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "[]"
