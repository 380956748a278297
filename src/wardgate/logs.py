"""Operational events (start, reload, worker exits, key fetches) as JSON lines on stderr.

Never pass a token or secret here; log a fingerprint (wardgate.logs.fingerprint) instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from typing import Any


def event(name: str, level: str = "info", **fields: Any) -> None:
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": level,
              "event": name, "pid": os.getpid(), **fields}
    try:
        sys.stderr.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def fingerprint(secret: str | bytes) -> str:
    """A short, non-reversible identifier for a token or secret, safe to log."""
    data = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(data).hexdigest()[:12]
