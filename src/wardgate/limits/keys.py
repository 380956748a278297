"""What a limit counts by: each `key:` kind compiled once into a function of the request.

Every key carries its kind as a prefix (`s:`, `c:`, `h:`, `k:`, `ip:`), so a subject named like
an address can never share a bucket with that address. A request that lacks the key (an
anonymous call on a `sub` limit, a missing header or claim) is counted by its client address
instead: never by one bucket shared by every such request.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wardgate.gateway.headers import TrustedProxies
    from wardgate.gateway.request import Request

KeyFn = Callable[["Request"], str]
_MAX_VALUE = 128  # longer values are counted by their hash: bounded key size in memory and Redis


def _bounded(prefix: str, value: str) -> str:
    if len(value) > _MAX_VALUE:
        value = "#" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return prefix + value


def client_address(trusted: TrustedProxies) -> KeyFn:
    """The client's address: the peer, or - when the peer is a trusted proxy - the right-most
    X-Forwarded-For hop that is not one (the first address no trusted party vouches for)."""
    if not trusted:
        return lambda req: "ip:" + req.client_ip

    def address(req: Request) -> str:
        ip = req.client_ip
        if ip in trusted:
            xff = req.header(b"x-forwarded-for")
            if xff is not None:
                for hop in reversed(xff.split(b",")):
                    text = hop.strip().decode("latin-1")
                    try:
                        ipaddress.ip_address(text)
                    except ValueError:
                        break  # a malformed hop: stop at the last address we can trust
                    ip = text
                    if text not in trusted:
                        break
        return "ip:" + ip

    return address


def compile_key(spec: str, route: str, trusted: TrustedProxies) -> KeyFn:
    fallback = client_address(trusted)
    if spec == "ip":
        return fallback
    if spec == "route":
        whole = "r:" + route
        return lambda req: whole
    if spec == "sub":
        def by_sub(req: Request) -> str:
            ident = req.identity
            if ident is not None and ident.sub is not None:
                return _bounded("s:" + ident.provider + "\0", ident.sub)
            return fallback(req)
        return by_sub
    if spec == "client_id":
        def by_client(req: Request) -> str:
            ident = req.identity
            if ident is not None:
                claims = ident.claims
                value = claims.get("client_id") or claims.get("azp")
                if isinstance(value, str) and value:
                    return _bounded("c:" + ident.provider + "\0", value)
            return fallback(req)
        return by_client
    kind, _, name = spec.partition(":")
    if kind == "header":
        lname = name.lower().encode()

        def by_header(req: Request) -> str:
            value = req.header(lname)
            if value:
                return _bounded("h:", value.decode("latin-1"))
            return fallback(req)
        return by_header
    if kind == "claim":
        from wardgate.auth.identity import claim_at, is_missing

        path = tuple(name.split("."))

        def by_claim(req: Request) -> str:
            ident = req.identity
            if ident is not None:
                value: Any = claim_at(ident.claims, path)
                if not is_missing(value) and isinstance(value, str | int) \
                        and not isinstance(value, bool) and value != "":
                    return _bounded("k:" + ident.provider + "\0", str(value))
            return fallback(req)
        return by_claim
    raise ValueError(f"unknown rate limit key {spec!r}")
