"""RFC 7638 JWK thumbprints: SHA-256 over the key's required members, lexically ordered,
without whitespace; base64url without padding (the value of `cnf.jkt`, RFC 9449 §6.1)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

# RFC 7638 §3.2: the required members of each key type (RFC 8037 §2 for OKP)
REQUIRED = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(jwk: dict[str, Any]) -> str:
    """The thumbprint of a public JWK; ValueError when a required member is missing or is
    not a string."""
    names = REQUIRED.get(jwk.get("kty"))  # type: ignore[arg-type]
    if names is None:
        raise ValueError("unsupported kty")
    members = {}
    for name in names:
        value = jwk.get(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"JWK member {name} missing")
        members[name] = value
    # names are already in lexical order; ensure_ascii keeps the hash input pure ASCII
    raw = json.dumps(members, separators=(",", ":"), ensure_ascii=True).encode()
    return b64url(hashlib.sha256(raw).digest())
