"""Where a route's token comes from, and how it is removed before forwarding. Sans-I/O.

Sources, in precedence order: `Authorization: Bearer` (RFC 6750 §2.1), a named cookie, a query
parameter (RFC 6750 §2.3; opt-in only, it leaks into logs and Referer). All enabled sources are
read; the same token in several places is fine, two different tokens are a 400 (RFC 6750 §2:
"MUST NOT use more than one method").
"""

from __future__ import annotations

import hmac
import re
from urllib.parse import unquote_to_bytes

from wardgate.config.auth import TokenSources

# RFC 6750 §2.1 b64token
_B64TOKEN = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")


# how the token came (extract_scheme): as a bearer token (header or query), with the DPoP
# scheme (RFC 9449 §7.1), or from the cookie alone (a bound cookie needs a proof too)
BEARER = 0
DPOP = 1
COOKIE = 2


class BadTokenRequest(Exception):
    """The request carries credentials in a malformed or ambiguous way (400 invalid_request)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _is_bearer(value: bytes) -> bool:
    # the auth scheme is case-insensitive (RFC 9110 §11.1)
    return value[:7].lower() == b"bearer " or value.lower() == b"bearer"


def _is_dpop(value: bytes) -> bool:
    # RFC 9449 §7.1: `Authorization: DPoP <token>`
    return value[:5].lower() == b"dpop "


def _cookie_pairs(value: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for part in value.split(b";"):
        name, sep, val = part.strip().partition(b"=")
        if sep:
            if len(val) >= 2 and val[:1] == b'"' and val[-1:] == b'"':
                val = val[1:-1]  # RFC 6265 §4.1.1 cookie-value may be quoted
            out.append((name, val))
    return out


def _query_pairs(query: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for part in query.split(b"&"):
        name, _, val = part.partition(b"=")
        if b"%" in name or b"+" in name:
            name = unquote_to_bytes(name.replace(b"+", b" "))
        out.append((name, val))
    return out


def csrf_ok(headers: list[tuple[bytes, bytes]], cookie: bytes, header: bytes) -> bool:
    """Exactly one CSRF header, non-empty, equal to the CSRF cookie (constant-time)."""
    sent: bytes | None = None
    expected: bytes | None = None
    for name, value in headers:
        if name == header:
            if sent is not None:
                return False
            sent = value
        elif name == b"cookie":
            for cname, cval in _cookie_pairs(value):
                if cname == cookie:
                    expected = cval
    if not sent or expected is None:
        return False
    return hmac.compare_digest(sent, expected)


def has_bearer(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(n == b"authorization" and (_is_bearer(v) or _is_dpop(v)) for n, v in headers)


class TokenExtractor:
    __slots__ = ("header", "cookie", "query")

    def __init__(self, cfg: TokenSources) -> None:
        self.header = cfg.header
        self.cookie = cfg.cookie.encode() if cfg.cookie else None
        self.query = cfg.query.encode() if cfg.query else None

    def extract(self, headers: list[tuple[bytes, bytes]], query: bytes) -> bytes | None:
        """The request's token, None if there is none; BadTokenRequest if ambiguous/malformed.
        A DPoP-scheme token counts as none: only extract_scheme's callers check proofs."""
        token, kind = self.extract_scheme(headers, query)
        return None if kind == DPOP else token

    def extract_scheme(self, headers: list[tuple[bytes, bytes]],
                       query: bytes) -> tuple[bytes | None, int]:
        """(token, how it came: BEARER, DPOP for `Authorization: DPoP`, COOKIE when only the
        cookie carried it), as `extract`."""
        found: bytes | None = None
        seen_auth = False
        dpop = False
        bearer = False  # a Bearer header or the query named it too
        for name, value in headers:
            if name == b"authorization" and self.header:
                if seen_auth:
                    raise BadTokenRequest("multiple_authorization")
                seen_auth = True
                if not _is_bearer(value):
                    if not _is_dpop(value):
                        continue  # another scheme (Basic, ...) is not ours to judge
                    dpop = True
                    found = self._merge(found, value[5:].lstrip(b" "))
                    continue
                # syntax is checked on a cache miss only (check_syntax): a cached token passed
                # the stricter compact-JWS parser already
                found = self._merge(found, value[7:].lstrip(b" "))
                bearer = True
            elif name == b"cookie" and self.cookie is not None:
                for cname, cval in _cookie_pairs(value):
                    if cname == self.cookie:
                        found = self._merge(found, cval)
        if self.query is not None and query:
            seen_q = False
            for qname, qval in _query_pairs(query):
                if qname == self.query:
                    if seen_q:
                        raise BadTokenRequest("conflicting_tokens")
                    seen_q = True
                    if b"%" in qval:
                        qval = unquote_to_bytes(qval)
                    found = self._merge(found, qval)
                    bearer = True
        if found is not None and not found:
            raise BadTokenRequest("empty_token")
        if dpop:
            return found, DPOP
        return found, COOKIE if found is not None and not bearer else BEARER

    @staticmethod
    def check_syntax(token: bytes) -> None:
        if not _B64TOKEN.fullmatch(token):
            raise BadTokenRequest("malformed_token")

    @staticmethod
    def _merge(found: bytes | None, new: bytes) -> bytes:
        if found is not None and found != new:
            raise BadTokenRequest("conflicting_tokens")
        return new

    def strip_cookie(self, value: bytes) -> bytes:
        """The Cookie header without our token cookie (b"" when nothing remains)."""
        assert self.cookie is not None
        keep = [p.strip() for p in value.split(b";")
                if p.strip().partition(b"=")[0] != self.cookie and p.strip()]
        return b"; ".join(keep)

    def strip_query(self, query: bytes) -> bytes:
        assert self.query is not None
        keep = [p for p in query.split(b"&")
                if p and _query_pairs(p)[0][0] != self.query]
        return b"&".join(keep)
