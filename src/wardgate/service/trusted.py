"""Trusted-gateway mode: the identity comes from the headers the gateway added.

Only safe when nothing but the gateway can reach the service: the gateway strips these header
names from every client request (docs/configuration.md, `claims_to_headers`), but a caller that
bypasses it can write them freely. `trusted_peers` narrows who may speak for the gateway; it is
a second fence, not a replacement for network isolation.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from wardgate.auth.identity import Identity
from wardgate.errors import InvalidToken, MissingToken
from wardgate.service.headers import first

# The gateway joins arrays with "," and passes a `scope` string as-is (space-delimited).
_SPLIT = re.compile(r"[,\s]+")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _names(value: str | None) -> bytes | None:
    return value.lower().encode() if value else None


@dataclass(frozen=True)
class GatewayHeaders:
    """Header names that match the route's `claims_to_headers` (or `payload_header`)."""

    sub: str = "X-User-Id"
    roles: str | None = "X-User-Roles"
    scope: str | None = "X-User-Scope"
    #: the gateway's `payload_header`: base64url JSON of every verified claim (wins when present)
    payload: str | None = None
    trusted_peers: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    roles_claim: str = "roles"
    _nets: tuple[Network, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nets = tuple(ipaddress.ip_network(p, strict=False) for p in self.trusted_peers)
        object.__setattr__(self, "_nets", nets)

    def peer_trusted(self, peer: str | None) -> bool:
        if not self._nets:
            return True  # an empty list says: isolation is the network's job
        if peer is None:
            return False
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(addr in n for n in self._nets)

    def identity(self, headers: list[tuple[bytes, bytes]], peer: str | None) -> Identity:
        """Identity from the gateway's headers; MissingToken when none reached us."""
        if not self.peer_trusted(peer):
            # Identity headers from anyone else are ignored, as if absent.
            raise MissingToken("Authentication required")
        claims: dict[str, Any]
        name = _names(self.payload)
        raw = first(headers, name) if name else None
        if raw is not None:
            claims = _decode_payload(raw)
        else:
            sub_name = _names(self.sub)
            sub = first(headers, sub_name) if sub_name else None
            if not sub:
                raise MissingToken("Authentication required")
            claims = {"sub": sub.decode("utf-8", "replace")}
            for hdr, claim in ((self.roles, self.roles_claim), (self.scope, "scope")):
                hname = _names(hdr)
                value = first(headers, hname) if hname else None
                if value is not None:
                    claims[claim] = _split(value)
        exp = claims.get("exp")
        expires = float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else math.inf
        return Identity("gateway", claims, b"", tuple(self.roles_claim.split(".")), None, expires)


def _split(value: bytes) -> list[str]:
    return [v for v in _SPLIT.split(value.decode("utf-8", "replace")) if v]


def _decode_payload(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidToken("The identity header is malformed")
    if not isinstance(data, dict) or not isinstance(data.get("sub"), str):
        raise InvalidToken("The identity header is malformed")
    return data

