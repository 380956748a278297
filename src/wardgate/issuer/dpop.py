"""DPoP (RFC 9449) at the issuer: the proof a token request carries (§5), and the server
nonce (§8/§9). The checks are the gateway's own (wardgate.dpop.proof.ProofVerifier).

`htu` is compared with the endpoint's public URL (`issuer` + path, what discovery announces),
so the issuer can sit behind a proxy. The jti replay cache is this process's; nonces are
stateless (an HMAC key kept in the database), so several issuer processes accept each
other's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.requests import Request

from wardgate.config.issuer import IssuerDpopConfig
from wardgate.dpop import htu
from wardgate.dpop.errors import NonceRequired, ProofError
from wardgate.dpop.nonce import NonceSource
from wardgate.dpop.proof import ProofVerifier
from wardgate.dpop.replay import ReplayCache, local_key
from wardgate.issuer.errors import InvalidDpopProof, UseDpopNonce

_MAX_PROOFS = 200_000


class IssuerDpop:
    def __init__(self, cfg: IssuerDpopConfig, nonce_key: bytes,
                 clock: Callable[[], float] = time.time) -> None:
        self.nonces = NonceSource(nonce_key, cfg.nonce_lifetime_s) if cfg.require_nonce else None
        self.verifier = ProofVerifier(cfg.algorithms, max_age_s=cfg.max_age_s,
                                      max_future_s=cfg.max_future_s, nonces=self.nonces)
        self.algorithms = list(cfg.algorithms)
        self.replay = ReplayCache(self.verifier.window_s, _MAX_PROOFS)
        self.clock = clock

    def proof_jkt(self, request: Request, url: str) -> str | None:
        """The thumbprint of the key the request's DPoP proof is signed with; None when it
        carries no proof. Raises InvalidDpopProof or UseDpopNonce."""
        proofs = request.headers.getlist("dpop")
        if not proofs:
            return None
        if len(proofs) != 1:
            raise InvalidDpopProof("exactly one DPoP proof is allowed")
        uri = htu.normalise(url)
        assert uri is not None  # our own endpoint URL
        now = self.clock()
        try:
            proof = self.verifier.verify(proofs[0].encode("latin-1"), method=request.method,
                                         uri=uri, now=now)
        except NonceRequired as exc:
            raise UseDpopNonce(exc.nonce) from None
        except ProofError as exc:
            raise InvalidDpopProof(f"DPoP proof refused ({exc.reason})") from None
        if self.replay.add(local_key(proof.jkt, proof.jti), now):
            raise InvalidDpopProof("DPoP proof refused (replayed)")
        return proof.jkt

    def fresh_nonce(self) -> str | None:
        return self.nonces.current(self.clock()) if self.nonces is not None else None
