"""The gateway's DPoP adapter: one `DpopContext` per worker, used by every route's auth step
(wardgate.auth.route), and the Redis replay step the pipeline runs after it.

Per request with `Authorization: DPoP`: exactly one `DPoP` field (RFC 9449 §4.3 step 1), the
request's target URI (scheme and host from the listener, or from a trusted proxy's `Forwarded`
/ `X-Forwarded-Proto` + `X-Forwarded-Host`; the path as the client sent it), the proof checked
by ProofVerifier, then the jti replay check: this worker's cache at once, and Redis (when
`state.redis_url` is set) by a callback the pipeline waits for, like a global rate limit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wardgate.dpop import htu as htu_mod
from wardgate.dpop.errors import NonceRequired, ProofError
from wardgate.dpop.nonce import NONCE_KEY_ENV, NonceSource
from wardgate.dpop.proof import ProofVerifier
from wardgate.dpop.replay import SCRIPT, ReplayCache, local_key, redis_key
from wardgate.errors import (
    DpopInvalidToken,
    GatewayError,
    InvalidDpopProof,
    ServiceUnavailable,
    UseDpopNonce,
)

if TYPE_CHECKING:
    from wardgate.auth.identity import Identity
    from wardgate.config.auth import DpopConfig
    from wardgate.gateway.headers import TrustedProxies
    from wardgate.gateway.request import Request
    from wardgate.state.client import StateClient

Resume = Callable[[GatewayError | None], None]

# RFC 6750 §3 style: generic texts, the reason code goes to the access log only
_BAD_PROOF = "The DPoP proof is invalid"
_NEED_NONCE = "The DPoP proof must carry the server's nonce"
_URI_MEMO_MAX = 4096


def nonce_key(cfg: DpopConfig) -> bytes | None:
    n = cfg.nonce
    if n is None:
        return None
    if n.secret_env is not None:
        return os.environ[n.secret_env].encode()
    run_key = os.environ.get(NONCE_KEY_ENV)
    # a worker of `wardgate run` gets the run's key; anything else (tests, one process)
    # makes its own
    return bytes.fromhex(run_key) if run_key else os.urandom(32)


class DpopContext:
    """One worker's DPoP state: the verifier (with its key memo), the replay cache, the
    nonce source, and the Redis client when replay state is shared."""

    def __init__(self, cfg: DpopConfig, trusted: TrustedProxies, clock: Callable[[], float],
                 state: StateClient | None = None) -> None:
        key = nonce_key(cfg)
        self.nonces = NonceSource(key, cfg.nonce.lifetime_s) \
            if key is not None and cfg.nonce is not None else None
        self.verifier = ProofVerifier(cfg.algorithms, max_age_s=cfg.max_age_s,
                                      max_future_s=cfg.max_future_s,
                                      max_bytes=cfg.max_proof_bytes, nonces=self.nonces,
                                      min_rsa_bits=cfg.min_rsa_bits)
        self.algs = self.verifier.algs_value
        self.replay = ReplayCache(self.verifier.window_s, cfg.replay_cache_entries)
        self.clock = clock
        self.trusted = trusted
        self.state = state
        self.deny_on_store_error = cfg.on_store_error == "deny"
        self._bound = SCRIPT.bind(int(self.verifier.window_s * 1000) + 1000)
        if state is not None:
            state.register(SCRIPT)
        self._uris: dict[tuple[str, bytes, bytes], str | None] = {}

    # -- the auth step ---------------------------------------------------------------------
    def check(self, req: Request, token: bytes, ident: Identity) -> None:
        """The request came with `Authorization: DPoP <token>`: raise unless its proof holds."""
        jkt = ident.jkt
        if jkt is None:
            req.auth_outcome = "dpop_unbound_token"
            raise DpopInvalidToken("The access token is not DPoP-bound", algs=self.algs)
        proof = None
        count = 0
        for name, value in req.headers:
            if name == b"dpop":
                count += 1
                proof = value
        if count != 1 or proof is None:
            raise self._fail(req, "missing_proof" if not count else "multiple_proofs")
        uri = self._uri(req)
        if uri is None:
            raise self._fail(req, "bad_target")
        now = self.clock()
        try:
            p = self.verifier.verify(proof, method=req.method, uri=uri, now=now,
                                     access_token=token, jkt=jkt)
        except NonceRequired as exc:
            req.auth_outcome = "dpop_" + exc.reason
            raise UseDpopNonce(_NEED_NONCE, algs=self.algs, nonce=exc.nonce)
        except ProofError as exc:
            raise self._fail(req, exc.reason)
        seen = self.replay.add(local_key(p.jkt, p.jti), now)
        if seen:
            if seen == 1:
                raise self._fail(req, "replayed")
            req.auth_outcome = "dpop_replay_cache_full"
            raise ServiceUnavailable("Too many DPoP proofs to remember", code="dpop_busy",
                                     retry_after_s=1)
        if self.state is not None:
            req.dpop_key = redis_key(p.jkt, p.jti)
        if p.stale_nonce and self.nonces is not None:
            # RFC 9449 §8.2: a new nonce before the client's one runs out
            req.resp_fields += b"\r\nDPoP-Nonce: " + self.nonces.current(now).encode()

    def _fail(self, req: Request, reason: str) -> InvalidDpopProof:
        req.auth_outcome = "dpop_" + reason
        return InvalidDpopProof(_BAD_PROOF, algs=self.algs)

    def _uri(self, req: Request) -> str | None:
        scheme, host = req.scheme, req.host_header
        if self.trusted and req.client_ip in self.trusted:
            scheme, host = forwarded_origin(req.headers, scheme, host)
        target = req.raw_target
        path = target.partition(b"?")[0] if target[:1] == b"/" else req.path.encode()
        key = (scheme, host, path)
        uri = self._uris.get(key, "")
        if uri == "":
            try:
                uri = htu_mod.request_uri(scheme, host.decode("ascii"), path.decode("ascii"))
            except UnicodeDecodeError:
                uri = None
            if len(self._uris) >= _URI_MEMO_MAX:
                self._uris.clear()
            self._uris[key] = uri
        return uri

    # -- the replay step on Redis (pipeline: after auth, before rate limits) ---------------
    def start_remote(self, req: Request, resume: Resume) -> None:
        key = req.dpop_key
        state = self.state
        assert key is not None and state is not None

        def done(reply: Any) -> None:
            if reply == 1 and type(reply) is int:
                resume(None)
            elif reply == 0 and type(reply) is int:
                req.auth_outcome = "dpop_replayed"
                resume(InvalidDpopProof(_BAD_PROOF, algs=self.algs))
            elif self.deny_on_store_error:
                req.auth_outcome = "dpop_store_error"
                resume(ServiceUnavailable("DPoP replay state is unavailable",
                                          code="dpop_store_error", retry_after_s=1))
            else:
                resume(None)  # this worker's cache has checked it (on_store_error: local)

        state.run(self._bound, key, done)


def _first(value: bytes) -> bytes:
    return value.split(b",", 1)[0].strip(b" \t")


def forwarded_origin(headers: list[tuple[bytes, bytes]], scheme: str,
                     host: bytes) -> tuple[str, bytes]:
    """Scheme and host a trusted proxy says the client used: RFC 7239 `Forwarded` (its first
    element: the hop nearest the client), else `X-Forwarded-Proto` / `X-Forwarded-Host`."""
    fwd = xfp = xfh = None
    for name, value in headers:
        if name == b"forwarded" and fwd is None:
            fwd = value
        elif name == b"x-forwarded-proto" and xfp is None:
            xfp = value
        elif name == b"x-forwarded-host" and xfh is None:
            xfh = value
    if fwd is not None:
        for pair in _first(fwd).split(b";"):
            k, _, v = pair.strip().partition(b"=")
            v = v.strip(b'"')
            k = k.lower()
            if k == b"proto" and v.lower() in (b"http", b"https"):
                scheme = v.lower().decode()
            elif k == b"host" and v:
                host = v
        return scheme, host
    if xfp is not None and _first(xfp).lower() in (b"http", b"https"):
        scheme = _first(xfp).lower().decode()
    if xfh is not None and _first(xfh):
        host = _first(xfh)
    return scheme, host
