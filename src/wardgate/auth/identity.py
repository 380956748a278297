"""The verified caller (`req.identity`) and what the upstream learns about it.

Everything derived from the claims (scopes, roles, the hash of sub, header values) is computed
once per verified token and kept on the Identity, so a cache hit costs no parsing or formatting.
"""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Any

from wardgate.auth.keys import VerificationKey

_MISSING = object()

# The key of Identity.sub_hash. An unkeyed hash of a user id or an e-mail address is undone by
# hashing a list of candidates; a keyed one only by whoever holds the key. Random per process
# unless set: `wardgate run` gives all its workers one key (access_log.sub_hash_key_env, or a
# random one per run), so one caller has one hash across workers and reloads.
_SUB_KEY = secrets.token_bytes(32)


def set_sub_hash_key(key: bytes) -> None:
    global _SUB_KEY
    _SUB_KEY = key


def claim_at(claims: dict[str, Any], path: tuple[str, ...]) -> Any:
    """Value at a dotted path (`realm_access.roles`), or _MISSING. A literal key containing dots
    (`https://example.com/roles`) is tried first, so namespaced claims work unsplit."""
    if len(path) > 1:
        whole = claims.get(".".join(path), _MISSING)
        if whole is not _MISSING:
            return whole
    value: Any = claims
    for part in path:
        if not isinstance(value, dict):
            return _MISSING
        value = value.get(part, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


def is_missing(value: Any) -> bool:
    return value is _MISSING


# scope string -> its frozenset: the tokens of one issuer carry a handful of distinct scope
# strings, so each verified token shares the (immutable) set instead of building its own: one
# allocation less per miss, one GC-tracked object less per cached token
_SETS: dict[str, frozenset[str]] = {}
_SETS_MAX = 256  # distinct strings remembered; emptied when full
_SETS_MAX_LEN = 512  # longer strings are split every time, never remembered


def _strings(value: Any) -> frozenset[str]:
    """Scopes/roles: a space-delimited string (RFC 8693 §4.2 `scope`) or an array of strings."""
    if isinstance(value, str):
        out = _SETS.get(value)
        if out is None:
            out = frozenset(value.split())
            if len(value) <= _SETS_MAX_LEN:
                if len(_SETS) >= _SETS_MAX:
                    _SETS.clear()
                _SETS[value] = out
        return out
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


def act_chain(value: Any, limit: int = 16) -> list[str] | None:
    """RFC 8693 §4.1 `act`: the actors, current first; None unless a chain of string subs."""
    out: list[str] = []
    while value is not None:
        if not isinstance(value, dict) or len(out) >= limit:
            return None
        sub = value.get("sub")
        if not isinstance(sub, str):
            return None
        out.append(sub)
        value = value.get("act")
    return out


def header_value(value: Any) -> bytes | None:
    """Render a claim for an upstream header: scalars as text, arrays joined with ','.

    None when the value cannot be sent safely (objects, CR/LF/NUL or other controls).
    """
    if isinstance(value, dict):
        # the one object a header can carry: a delegation chain, sent as "current,earlier,..."
        value = act_chain(value)
        if value is None:
            return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        text = json.dumps(value)
    elif isinstance(value, list) and all(isinstance(v, str | int | float) and not isinstance(v, bool)
                                         for v in value):
        if any(isinstance(v, str) and "," in v for v in value):
            return None  # a comma inside an element would forge an extra element
        text = ",".join(v if isinstance(v, str) else json.dumps(v) for v in value)
    else:
        return None
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    # RFC 9110 §5.5: CR, LF and NUL are never allowed in a field value; other controls neither
    if any(b < 0x20 and b != 0x09 or b == 0x7F for b in raw):
        return None
    return raw


class Identity:
    """A verified token. `provider` and `sub_hash` feed the access log; never the token itself.

    Built on every cache miss, so only what every request needs is computed here: `scopes`
    (most routes ask for one). `roles` and `sub_hash` are computed on first use and kept, so a
    route without role rules and a gateway without an access log never pay for them.
    """

    __slots__ = ("provider", "sub", "_sub_hash", "claims", "scopes", "_roles", "_roles_path",
                 "exp", "jti", "key", "payload_b64", "_headers", "jkt")

    def __init__(self, provider: str, claims: dict[str, Any], payload_segment: bytes,
                 roles_path: tuple[str, ...], key: VerificationKey | None, exp: float) -> None:
        self.provider = provider
        self.claims = claims
        sub = claims.get("sub")
        self.sub: str | None = sub if isinstance(sub, str) else None
        self._sub_hash: str | None = None
        scope = claims.get("scope")
        scp = claims.get("scp")
        if scp is None:
            self.scopes = _strings(scope)
        elif scope is None:
            self.scopes = _strings(scp)
        else:
            self.scopes = _strings(scope) | _strings(scp)
        self._roles: frozenset[str] | None = None
        self._roles_path = roles_path
        self.exp = exp
        jti = claims.get("jti")
        self.jti: str | None = jti if isinstance(jti, str) else None
        self.key = key
        # RFC 9449 §6.1: a DPoP-bound token names its key's thumbprint in cnf.jkt. A cnf that
        # binds it some other way (mTLS x5t#S256, ...) is kept as "", which no proof matches
        cnf = claims.get("cnf")
        if cnf is None:
            self.jkt: str | None = None
        else:
            jkt = cnf.get("jkt") if type(cnf) is dict else None
            self.jkt = jkt if type(jkt) is str and jkt else ""
        # the signed payload segment is already base64url: forward it as-is, no re-encoding
        self.payload_b64 = payload_segment
        self._headers: dict[int, list[tuple[bytes, bytes]]] | None = None

    @property
    def sub_hash(self) -> str:
        if self._sub_hash is None:
            sub = self.sub
            self._sub_hash = (hmac.new(_SUB_KEY, f"{self.provider}\0{sub}".encode(),
                                       "sha256").hexdigest()[:16]
                              if sub is not None else "-")
        return self._sub_hash

    @property
    def roles(self) -> frozenset[str]:
        roles = self._roles
        if roles is None:
            value = claim_at(self.claims, self._roles_path)
            roles = self._roles = frozenset() if value is _MISSING else _strings(value)
        return roles

    def headers_for(self, route_id: int, mapping: tuple[tuple[tuple[str, ...], bytes], ...],
                    payload_header: bytes | None) -> list[tuple[bytes, bytes]]:
        """Identity headers for one route's claims_to_headers, built once per token and route."""
        cached = self._headers
        if cached is None:
            cached = self._headers = {}
        out = cached.get(route_id)
        if out is None:
            out = []
            for path, name in mapping:
                value = claim_at(self.claims, path)
                if value is _MISSING or value is None:
                    continue
                rendered = header_value(value)
                if rendered is not None:
                    out.append((name, rendered))
            if payload_header is not None:
                out.append((payload_header, self.payload_b64))
            if len(cached) < 64:
                cached[route_id] = out
        return out

    def __repr__(self) -> str:
        return f"Identity(provider={self.provider!r}, sub_hash={self.sub_hash!r})"
