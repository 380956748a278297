"""What the detector sees of one finished request: a compact, immutable event (no I/O).

Built off the request path from the request the worker kept (adapter.py); tests build them by
hand. `time` is the detector's clock (monotonic seconds), passed in, never read here.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import NamedTuple

#: auth outcomes (the access log's codes) that are a refused token
REFUSED_OUTCOMES = frozenset((
    "malformed_token", "malformed", "jwe", "duplicate_key", "too_deep", "bad_iss",
    "unknown_issuer", "alg_none", "alg_not_allowed", "alg_key_mismatch", "embedded_key", "crit",
    "b64", "nested", "bad_typ", "unknown_kid", "bad_signature", "expired", "not_yet_valid",
    "bad_iat", "bad_exp", "bad_aud", "missing_claim", "bad_claim", "lifetime", "revoked",
    "oversize", "empty_token"))
#: of those, the ones that probe the key or issuer configuration rather than replay old tokens
PROBING_OUTCOMES = frozenset(("unknown_kid", "bad_iss", "unknown_issuer", "alg_none",
                              "alg_not_allowed", "alg_key_mismatch", "embedded_key", "crit",
                              "bad_typ", "bad_signature"))


class Event(NamedTuple):
    """Immutable; a NamedTuple rather than a frozen dataclass because one is built per
    request (in the detector's tick), and a tuple is built several times faster."""

    time: float
    route: str
    client: str                      # the client address
    network: str                     # its /24 (IPv4) or /48 (IPv6) prefix
    status: int = 200
    method: str = "GET"
    outcome: str = "ok"              # the auth outcome (access log code)
    sub: str | None = None
    jti: str | None = None
    client_id: str | None = None     # client_id or azp claim
    sub_hash: str | None = None      # the access log's keyed hash of sub (for events shown)
    ua: str = ""                     # a short hash of the User-Agent
    path: str = "/"
    params: tuple[str, ...] = ()      # the route's {param} values, in order
    exp: float = 0.0                  # the token's exp (0: none); what `revoke` keeps it for
    size: int = 0                     # response bytes (the anomaly model's feature)


_NETS: dict[str, str] = {}


def network_of(ip: str) -> str:
    """The /24 of an IPv4 address, the /48 of an IPv6 one (remembered, bounded)."""
    net = _NETS.get(ip)
    if net is None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return ip or "-"
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        prefix = 24 if addr.version == 4 else 48
        net = str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))
        if len(_NETS) >= 65_536:
            _NETS.clear()
        _NETS[ip] = net
    return net


_UAS: dict[bytes, str] = {}


def ua_hash(value: bytes | None) -> str:
    """8 hex digits of the User-Agent's SHA-256: enough to tell clients apart, not to log one
    (remembered, bounded: a handful of user agents make most of the traffic)."""
    if not value:
        return ""
    h = _UAS.get(value)
    if h is None:
        h = hashlib.sha256(value).hexdigest()[:8]
        if len(_UAS) >= 4096:
            _UAS.clear()
        _UAS[value] = h
    return h
