"""The running config without secrets: the shape an operator needs, no credential in it."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "<redacted>"
_SECRET_KEY = re.compile(r"(secret|password|passwd|token|private|credential|api_key)", re.I)
#: names of where a secret lives (env var name, file path) are not secrets themselves
_LOCATOR = re.compile(r"_(env|file)$")


def _url(v: str) -> str:
    try:
        u = urlsplit(v)
    except ValueError:
        return v
    if u.password is None and u.username is None:
        return v
    host = u.hostname or ""
    if u.port:
        host = f"{host}:{u.port}"
    return urlunsplit((u.scheme, f"{REDACTED}@{host}", u.path, u.query, u.fragment))


def redact(value: Any, key: str = "") -> Any:
    """Copy of `value` with secret-looking keys' values and URL credentials replaced."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if key and _SECRET_KEY.search(key) and not _LOCATOR.search(key) and value is not None:
        return REDACTED
    if isinstance(value, str) and "://" in value and "@" in value:
        return _url(value)
    return value
