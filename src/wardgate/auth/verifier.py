"""Token verification: one provider's rules applied to one compact JWS. Sans-I/O.

The only module that calls joserfc for verification. Order: size cap and strict parse
(compact.py) -> issuer dispatch -> header policy -> key by kid -> signature (joserfc, one
algorithm bound to the key) -> claims -> lifetime cap. The claim checks are ours
(`claims_ok`, kept identical to joserfc's JWTClaimsRegistry with our options by a differential
test, tests/auth/test_claims.py); a refused claim set goes through the registry for its reason.
Every failure is a `Rejected` with a reason code; nothing here raises anything else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)

from wardgate.auth import compact
from wardgate.auth.errors import KeysUnavailable, Rejected, UnknownKid
from wardgate.auth.identity import Identity
from wardgate.auth.keys import KeyRing
from wardgate.auth.registries import FORBIDDEN_HEADERS, ClaimsRegistry
from wardgate.config.auth import FORBIDDEN_TYP, ProviderConfig

Clock = Callable[[], float]
_TEN_YEARS = 10 * 366 * 86400.0
# joserfc's check_value: a claim with an option may not be blank, i.e. `in (None, "", [], {})`;
# for JSON values that is None, or an empty str, list or dict (0 and false are not blank)
_BLANK_TYPES = frozenset({str, list, dict})
_ABSENT = object()
_HEADER_REASON = {"crit": "crit", "b64": "b64"}  # the rest of FORBIDDEN_HEADERS: embedded_key


class ProviderVerifier:
    """Verifies tokens of one issuer against its KeyRing. `usable` is set by the key loader."""

    def __init__(self, cfg: ProviderConfig, ring: KeyRing, clock: Clock) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self.ring = ring
        self.clock = clock
        self.usable: Callable[[], bool] = lambda: ring.loaded and len(ring) > 0
        self._algs = frozenset(cfg.algorithms)
        self._typ = frozenset(t.lower().removeprefix("application/") for t in cfg.typ)
        self._roles_path = tuple(cfg.roles_claim.split("."))
        self._leeway = cfg.leeway_s
        self._max_ttl = float(cfg.max_lifetime_s) if cfg.max_lifetime_s else _TEN_YEARS
        options: dict[str, Any] = {c: {"essential": True} for c in cfg.required_claims}
        options["exp"] = {"essential": True}  # RFC 9068 §2.2: exp is required
        options["iss"] = {"essential": True, "value": cfg.issuer}  # RFC 7519 §4.1.1 exact
        # RFC 7519 §4.1.3: aud (string or array) must contain one of ours, exact match per element
        options["aud"] = {"essential": True, "values": list(cfg.audiences)}
        self._claims = ClaimsRegistry(now=clock, leeway=cfg.leeway_s, **options)
        # for claims_ok: every claim with an option is essential, see there
        assert all(option.get("essential") for option in options.values())
        # iss (equal to our non-empty issuer) and exp (a number) pass the blank test whenever
        # they pass their own checks below, so only the others need it
        self._essential = tuple(name for name in options if name not in ("iss", "exp"))
        self._issuer = cfg.issuer
        self._audiences = frozenset(cfg.audiences)
        # header segment -> (alg, kid) of headers that passed check_header: the check is a pure
        # function of the header and of our fixed configuration (see compact.split's memo)
        self._headers_ok: dict[bytes, tuple[str, str | None]] = {}

    def check_header(self, header: dict[str, Any]) -> str:
        """RFC 7515 §4.1 / RFC 8725 checks that need no key. Returns alg."""
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise Rejected("malformed")
        if alg.lower() == "none":
            raise Rejected("alg_none")  # RFC 8725 §3.1
        if alg not in self._algs:
            raise Rejected("alg_not_allowed")
        for name in FORBIDDEN_HEADERS:
            if name in header:
                raise Rejected(_HEADER_REASON.get(name, "embedded_key"))
        typ = header.get("typ")
        if typ is None:
            if self.cfg.require_typ:
                raise Rejected("bad_typ")
        elif not isinstance(typ, str):
            raise Rejected("malformed")
        else:
            # RFC 7515 §4.1.9: compare case-insensitively, "application/" may be omitted
            t = typ.lower().removeprefix("application/")
            if t in FORBIDDEN_TYP or t not in self._typ:
                raise Rejected("bad_typ")  # RFC 9068 §4, RFC 8725 §3.11
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Rejected("malformed")
        cty = header.get("cty")
        if cty is not None and (not isinstance(cty, str) or cty.lower() in ("jwt", "application/jwt")):
            raise Rejected("nested")  # RFC 7519 §5.2: a nested JWT; we take the claims as signed
        return alg

    def verify(self, parts: compact.Parts) -> Identity:
        checked = self._headers_ok.get(parts.header_segment)
        if checked is None:
            header = parts.header
            checked = (self.check_header(header), header.get("kid"))
            if len(self._headers_ok) >= compact.HEADER_MEMO_MAX:
                self._headers_ok.clear()
            self._headers_ok[parts.header_segment] = checked
        alg, kid = checked
        if not self.usable():
            raise KeysUnavailable(self.name)
        # kid is only a dictionary key here: never a path, URL or query (RFC 7515 §4.1.4)
        key = self.ring.lookup(kid)
        if key is None:
            raise UnknownKid()
        if key.alg != alg:
            raise Rejected("alg_key_mismatch")  # RFC 8725 §3.1: the key decides the algorithm
        try:
            # the key's own alg (resolved at import: keys._rsa_check or joserfc's model), over
            # the segments compact.split already checked: RFC 7515 §5.2 step 8
            ok = key.check(parts.signing_input, parts.signature)
        except (JoseError, TypeError, ValueError, RecursionError):
            raise Rejected("malformed") from None
        if not ok:
            raise Rejected("bad_signature")
        return self._identity(parts.claims, parts.payload_segment, key)

    def check_claims(self, claims: dict[str, Any]) -> float:
        """RFC 7519 §4.1 claim checks plus our lifetime cap; returns exp.

        `claims_ok` decides; joserfc's registry is asked only about a token it refused, for the
        reason code (a token it would accept is refused all the same: see claims_ok).
        """
        now = self.clock()
        exp: Any = self.claims_ok(claims, now)  # int or float: as the token has it
        if exp is None:
            self.library_check(claims)
            raise Rejected("bad_claim")  # not reached: test_claims.py checks both agree
        # neither library caps lifetime: exp 1e30 would never expire (jose-facts §5)
        try:
            exp = float(exp)
            if exp - now > self._max_ttl + self._leeway:
                raise Rejected("lifetime")
            iat = claims.get("iat")
            if iat is not None and exp - float(iat) > self._max_ttl:  # iat: a number if present
                raise Rejected("lifetime")
        except OverflowError:
            raise Rejected("lifetime") from None  # an integer beyond any float (10**400)
        return exp

    def claims_ok(self, claims: dict[str, Any], now: float) -> Any:
        """exp if the claims pass the checks of joserfc's JWTClaimsRegistry with our options,
        None if they fail any. exp is an int or a float, as the token has it: typed Any
        because the compiled module checks declared types, and an int is not a float there.
        Accepts exactly what `library_check` accepts (test_claims.py compares both on generated
        claim sets); written out here because the registry's per-claim dispatch costs more than
        the checks themselves.

        Our options make every claim with an option essential (required_claims, exp, iss with
        a value, aud with values), so each must be present and not blank (None, "", [], {}).
        Then, for the registered claims that are present: iss a str equal to ours; aud a str,
        or a list of str, naming one of our audiences; exp a NumericDate (int, or finite float;
        never bool) after now - leeway; nbf and iat NumericDates at most now + leeway; sub and
        jti strings.
        """
        get = claims.get
        for name in self._essential:
            value = get(name)
            if value is None or not value and type(value) in _BLANK_TYPES:
                return None
        iss = get("iss")
        if type(iss) is not str or iss != self._issuer:
            return None
        aud = get("aud")
        if type(aud) is str:
            if aud not in self._audiences:
                return None
        elif type(aud) is list:
            named = False
            for a in aud:
                if type(a) is not str:
                    return None
                if a in self._audiences:
                    named = True
            if not named:
                return None
        else:
            return None
        exp = get("exp")
        if not (type(exp) is int or type(exp) is float and math.isfinite(exp)):
            return None
        if exp <= now - self._leeway:
            return None
        latest = now + self._leeway
        for name in ("nbf", "iat"):  # NumericDates, if present, not in the future
            value = get(name, _ABSENT)
            if value is not _ABSENT and (not (type(value) is int or type(value) is float
                                              and math.isfinite(value)) or value > latest):
                return None
        for name in ("sub", "jti"):  # strings, if present
            value = get(name, _ABSENT)
            if value is not _ABSENT and type(value) is not str:
                return None
        return exp

    def library_check(self, claims: dict[str, Any]) -> None:
        """joserfc's JWTClaimsRegistry over the claims; raises Rejected with the reason code."""
        try:
            self._claims.validate(claims)
        except ExpiredTokenError:
            raise Rejected("expired") from None
        except MissingClaimError:
            raise Rejected("missing_claim") from None
        except InvalidClaimError as exc:
            raise Rejected({"iss": "bad_iss", "aud": "bad_aud", "nbf": "not_yet_valid",
                            "iat": "bad_iat", "exp": "bad_exp"}.get(exc.claim, "bad_claim")) from None
        except (JoseError, TypeError, ValueError):
            raise Rejected("bad_claim") from None

    def _identity(self, claims: dict[str, Any], payload_segment: bytes, key: Any) -> Identity:
        exp = self.check_claims(claims)
        return Identity(self.name, claims, payload_segment, self._roles_path, key, exp)


class TokenVerifier:
    """Picks the provider by the token's `iss` (never by trying every key) and verifies."""

    def __init__(self, providers: Iterable[ProviderVerifier], max_bytes: int) -> None:
        self.by_issuer: dict[str, ProviderVerifier] = {}
        for p in providers:
            if p.cfg.issuer in self.by_issuer:
                raise ValueError(f"providers {self.by_issuer[p.cfg.issuer].name!r} and {p.name!r} "
                                 "share an issuer; a route can trust only one of them")
            self.by_issuer[p.cfg.issuer] = p
        self.max_bytes = max_bytes
        self._headers: compact.HeaderMemo = {}  # parsed headers, see compact.split

    def parse(self, token: bytes) -> tuple[ProviderVerifier, compact.Parts]:
        parts = compact.split(token, self.max_bytes, self._headers)
        iss = parts.claims.get("iss")
        if not isinstance(iss, str):
            raise Rejected("bad_iss")
        provider = self.by_issuer.get(iss)
        if provider is None:
            raise Rejected("unknown_issuer")
        return provider, parts

    def verify(self, token: bytes) -> Identity:
        provider, parts = self.parse(token)
        return provider.verify(parts)
