"""The per-route auth filter: extract -> cache or verify -> revocation -> authorize; and the
identity rewrite of the upstream request. Compiled once per route by `compile_route_auth`.

On a cache hit `authenticate` is a header scan, a dict lookup, two attribute checks and the
compiled policy closure: no parsing, no formatting.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any

from wardgate.auth.compact import SPLIT_REASONS
from wardgate.auth.errors import KeysUnavailable, Rejected, UnknownKid
from wardgate.auth.extract import (
    COOKIE,
    DPOP,
    BadTokenRequest,
    TokenExtractor,
    _is_bearer,
    _is_dpop,
    csrf_ok,
    has_bearer,
)
from wardgate.auth.identity import Identity
from wardgate.auth.policy import Check, compile_requirement
from wardgate.auth.registry import ProviderRegistry
from wardgate.auth.verifier import TokenVerifier
from wardgate.config.auth import AuthPolicy
from wardgate.config.gateway import RouteConfig
from wardgate.errors import (
    AuthError,
    CsrfFailed,
    DpopInvalidToken,
    GatewayError,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    ServiceUnavailable,
)

if TYPE_CHECKING:  # the data plane imports us; keep the import one-way at runtime
    from wardgate.gateway.request import Request

# RFC 6750 §3: descriptions are for developers; keep them generic so they leak nothing
_EXPIRED = "The access token expired"
# RFC 9110 §9.2.1: methods that must not change state, so no CSRF token is asked for them.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_INVALID = "The access token is invalid"
_ROUTE_IDS = itertools.count(1)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # RFC 9110 §5.6.2 token
# identity headers may not replace framing, routing or credential headers
_RESERVED = frozenset({"host", "content-length", "transfer-encoding", "connection", "upgrade",
                       "te", "trailer", "keep-alive", "authorization", "cookie", "forwarded",
                       "proxy-authorization", "proxy-connection", "expect"})


class _NeedRefetch(Exception):
    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self.provider = provider


class RouteAuth:
    def __init__(self, route: RouteConfig, policy: AuthPolicy, registry: ProviderRegistry) -> None:
        self.name = route.name
        self._id = next(_ROUTE_IDS)  # keys this route's header values on each Identity
        self._registry = registry
        self._cache = registry.cache
        self._clock = registry.clock
        self._providers = frozenset(policy.providers)
        self._verifier = TokenVerifier([registry.verifier(n) for n in policy.providers],
                                       policy.token.max_bytes)
        self._extract = TokenExtractor(policy.token)
        self._default: Check = compile_requirement(policy.require)
        self._methods: dict[str, Check] = {m: compile_requirement(r)
                                           for m, r in policy.methods.items()}
        # identity headers: configured names (lower-case) and claim paths, fixed at compile time
        self._mapping = tuple((tuple(claim.split(".")), name.lower().encode())
                              for claim, name in route.claims_to_headers.items())
        self._payload_header = policy.payload_header.lower().encode() if policy.payload_header else None
        strip = {name for _, name in self._mapping}
        if self._payload_header:
            strip.add(self._payload_header)
        self._strip = frozenset(strip)
        self._adds_identity = bool(strip)  # False: forward() never asks the Identity
        forward_token = route.forward_token
        self._drop_auth = policy.token.header and not forward_token
        self._drop_cookie = self._extract.cookie is not None and not forward_token
        self._drop_proof = (policy.token.header or self._drop_cookie) and not forward_token
        self._drop_query = self._extract.query is not None and not forward_token
        # on_feed_error: deny: refuse (503) while the revocation feed is stale
        self._feed = registry.revocation_health
        self._need_fresh = self._feed is not None and \
            (policy.on_feed_error or registry.on_feed_error) == "deny"
        csrf = policy.token.csrf if policy.token.cookie else None
        self._csrf = (csrf.cookie.encode(), csrf.header.lower().encode()) if csrf else None
        # DPoP (wardgate.dpop): bound tokens need a proof on every route; `dpop:` decides
        # whether the route advertises DPoP and whether unbound (Bearer) tokens are refused
        self._dpop = registry.dpop
        self._dpop_mode = policy.dpop
        self._dpop_required = policy.dpop == "required"
        self._dpop_algs = registry.dpop.algs if registry.dpop is not None else None

    def check(self, req: Request) -> GatewayError | bool:
        """Authenticate and authorize without awaiting. True: allowed (req.identity set); the
        refusal (an AuthError, CsrfFailed or ServiceUnavailable) to answer with; False only
        when the token names a key we do not hold yet: then `await authenticate(req)`
        refetches the key set and decides.

        Lets the pipeline skip creating a task for the common case (cache hit or a verification
        that needs no network). A refusal is returned, not raised: an exception passing
        through compiled frames costs a traceback entry in each (a flood of forged tokens)."""
        try:
            refusal = self._run(req, refetched=False)
        except _NeedRefetch:
            return False
        except GatewayError as err:  # raised further in (the DPoP proof's checks, the keys)
            return err
        return True if refusal is None else refusal

    async def authenticate(self, req: Request) -> None:
        """The same decision, awaiting a key set refetch when the token needs one; raises the
        refusal."""
        try:
            refusal = self._run(req, refetched=False)
        except _NeedRefetch as need:
            await self._registry.refetch_for_kid(need.provider)
            refusal = self._run(req, refetched=True)
        if refusal is not None:
            raise refusal

    def _run(self, req: Request, refetched: bool) -> GatewayError | None:
        try:
            token, kind = self._extract.extract_scheme(req.headers, req.query)
        except BadTokenRequest as exc:
            req.auth_outcome = exc.reason
            return self._challenge(InvalidRequest(
                "The request carries malformed or conflicting credentials"), False)
        check = self._methods.get(req.method, self._default)
        if token is None:
            if check(None, req.params) is None:
                req.identity = None
                req.auth_outcome = "anonymous"
                return None
            req.auth_outcome = "no_token"
            # RFC 6750 §3.1: no error code
            return self._challenge(MissingToken("Authentication required"), False)
        if kind == DPOP or self._dpop_mode is not None:
            try:
                refusal = self._decide(req, token, check, refetched, kind)
            except AuthError as err:
                refusal = err
            if isinstance(refusal, AuthError):
                return self._challenge(refusal, kind == DPOP)
            return refusal
        return self._decide(req, token, check, refetched, kind)

    def _challenge(self, err: AuthError, dpop: bool) -> AuthError:
        """RFC 9449 §7.1: a route that takes DPoP says so in its challenges; a request that
        used DPoP, or a route that requires it, is answered with the DPoP scheme only."""
        if (dpop or self._dpop_mode is not None) and err.dpop_algs is None:
            err.dpop_algs = self._dpop_algs
            err.dpop_only = dpop or self._dpop_required
        return err

    def _decide(self, req: Request, token: bytes, check: Check, refetched: bool,
                kind: int) -> GatewayError | None:
        """The decision for a token: None when allowed (req.identity set), else the refusal.
        The DPoP proof's checks raise theirs."""
        csrf = self._csrf
        if csrf is not None and req.method not in _SAFE_METHODS and not has_bearer(req.headers) \
                and not csrf_ok(req.headers, *csrf):
            # The token came from the cookie, which a browser also sends cross-site.
            req.auth_outcome = "csrf_failed"
            return CsrfFailed("A cookie-authenticated request needs the CSRF header")
        ident = self._cache.get(token, self._clock())
        if ident is None or ident.provider not in self._providers:
            verified = self._verify(req, token, refetched)
            if not isinstance(verified, Identity):
                return verified
            ident = verified
        if kind == DPOP:
            if self._dpop is None:
                req.auth_outcome = "dpop_unsupported"
                return InvalidToken(_INVALID)
            self._dpop.check(req, token, ident)  # raises the DPoP errors
        elif ident.jkt is not None and kind == COOKIE and self._dpop is not None:
            # a bound token in the cookie (browser-mode DPoP login): the same proof as with
            # the DPoP scheme, `ath` over the cookie's token (docs/security.md)
            self._dpop.check(req, token, ident)
        elif ident.jkt is not None:
            # RFC 9449 §7.2: a bound token presented as a bearer token is refused everywhere
            req.auth_outcome = "dpop_bound_as_bearer"
            return DpopInvalidToken("A DPoP-bound token needs the DPoP scheme and a proof",
                                   algs=self._dpop_algs or "")
        elif self._dpop_required:
            req.auth_outcome = "dpop_required"
            return DpopInvalidToken("This resource requires a DPoP-bound token",
                                   algs=self._dpop_algs or "")
        revoked = self._registry.revocation
        if revoked is not None and revoked(ident):
            req.auth_outcome = "revoked"
            return InvalidToken(_INVALID)
        if self._need_fresh and not self._feed.fresh:
            req.auth_outcome = "revocation_stale"
            return ServiceUnavailable("Revocation state is not fresh enough for this route",
                                     code="revocation_state_stale", retry_after_s=5)
        req.identity = ident
        denied = check(ident, req.params)
        if denied is not None:
            req.auth_outcome = "insufficient_scope" if denied else "forbidden"
            return InsufficientScope("The access token lacks the privileges this request needs",
                                     scope=" ".join(denied) or None)
        req.auth_outcome = "ok"
        return None

    def still_valid(self, ident: Identity) -> bool:
        """Whether an Identity this route allowed for a connection's last request is still
        good for the same request again (the caller checks it is the same: same fields, query,
        method and path parameters, so the same token and the same policy decision). Only
        what changes with time is checked again: expiry, the key's presence, revocation."""
        key = ident.key
        if self._clock() >= ident.exp or (key is not None and not key.alive):
            return False
        if ident.jkt is not None:
            return False  # every request needs a fresh proof (and its replay check)
        revoked = self._registry.revocation
        if revoked is not None and revoked(ident):
            return False  # the full path answers it (and logs the reason)
        if self._need_fresh and not self._feed.fresh:
            return False
        self._cache.hits += 1
        return True

    def _verify(self, req: Request, token: bytes, refetched: bool) -> Identity | GatewayError:
        try:
            provider, parts = self._verifier.parse(token)
            try:
                ident = provider.verify(parts)
            except UnknownKid:
                if refetched:
                    if not self._registry.reachable(provider.name):
                        # The key set cannot be fetched: the kid may be a rotated-in key we
                        # could not see. 503 + Retry-After, not a 401 that makes a client
                        # throw a good token away.
                        raise KeysUnavailable(provider.name) from None
                    raise
                # Claims first: an expired or foreign token must not cost the issuer a fetch.
                provider.check_claims(parts.claims)
                raise _NeedRefetch(provider.name) from None
        except Rejected as exc:
            # RFC 6750 §2.1 b64token syntax, checked only now and only when compact.split
            # refused the token: every token split accepts is a b64token (its alphabet is a
            # subset), so such a token is still a 400, not a 401, and a token refused later
            # (a forged signature, say) is not scanned again
            if exc.reason in SPLIT_REASONS:
                try:
                    self._extract.check_syntax(token)
                except BadTokenRequest as bad:
                    req.auth_outcome = bad.reason
                    return InvalidRequest(
                        "The request carries malformed or conflicting credentials")
            req.auth_outcome = exc.reason
            return InvalidToken(_EXPIRED if exc.reason == "expired" else _INVALID)
        except KeysUnavailable:
            req.auth_outcome = "keys_unavailable"
            return ServiceUnavailable("Token signing keys are unavailable", code="keys_unavailable",
                                     retry_after_s=5)
        self._cache.put(token, ident)
        return ident

    def start_replay(self, req: Request, resume: Any) -> None:
        """The Redis half of the DPoP replay check (the pipeline's step after this one)."""
        self._dpop.start_remote(req, resume)

    def forward(self, req: Request) -> None:
        """Rewrite the request for the upstream: drop spoofed identity headers and (unless
        forward_token) the token; add this route's identity headers."""
        strip = self._strip
        out: list[tuple[bytes, bytes]] = []
        for field in req.headers:
            name = field[0]
            if name in strip or name.startswith(b"x-wardgate-"):
                continue
            if name == b"authorization" and self._drop_auth \
                    and (_is_bearer(field[1]) or _is_dpop(field[1])):
                continue
            if name == b"dpop" and self._drop_proof:
                continue  # the proof was for us (its htu names the gateway)
            if name == b"cookie" and self._drop_cookie:
                value = self._extract.strip_cookie(field[1])
                if not value:
                    continue
                field = (name, value)
            out.append(field)  # the pair as received: no new tuple per forwarded field
        ident = req.identity
        if self._adds_identity and isinstance(ident, Identity):
            out.extend(ident.headers_for(self._id, self._mapping, self._payload_header))
        req.headers = out
        if self._drop_query and req.query:
            req.query = self._extract.strip_query(req.query)


def compile_route_auth(route: RouteConfig, registry: ProviderRegistry) -> RouteAuth | None:
    """None for `auth: none`; raises ValueError if the route cannot be served safely."""
    if route.auth == "none" or route.auth is None:
        return None
    policy = route.auth
    known = set(registry.verifiers)
    missing = policy.provider_names() - known
    if missing:
        raise ValueError(f"route {route.name!r}: unknown provider(s) {sorted(missing)}")
    path = route.match.path or route.match.path_prefix or ""
    params = {seg[1:-1] for seg in path.split("/") if seg.startswith("{") and seg.endswith("}")}
    names = list(route.claims_to_headers.values()) + [policy.payload_header or "x-wardgate-payload"]
    for name in names:
        low = name.lower()
        if not _HEADER_NAME.match(name) or low in _RESERVED or low.startswith("x-forwarded-"):
            raise ValueError(f"route {route.name!r}: {name!r} cannot carry identity")
    unbound = policy.params_used() - params
    if unbound:
        raise ValueError(f"route {route.name!r}: claim rules use path parameter(s) "
                         f"{sorted(unbound)} that the route's path does not capture")
    return RouteAuth(route, policy, registry)
