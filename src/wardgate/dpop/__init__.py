"""DPoP (RFC 9449): proof-of-possession for access tokens, checked at the edge and the issuer.

    errors.py   ProofError (reason codes) and NonceRequired
    htu.py      the request URI as RFC 9449 §4.3 compares it (RFC 3986 §6.2.2/§6.2.3)
    thumb.py    RFC 7638 JWK thumbprints (the `cnf.jkt` of a bound token)
    nonce.py    stateless server nonces (HMAC over a time step), RFC 9449 §8/§9
    replay.py   the per-worker jti replay cache; the Redis script that shares it
    proof.py    ProofVerifier: one proof against one request (sans-I/O, clock passed in)
    step.py     the gateway adapter: one compiled check per route, and the Redis replay step

The core (everything but step.py) does no I/O and imports nothing from the gateway, so the
issuer (wardgate.issuer.dpop) uses the same verifier.
"""

from wardgate.dpop.errors import NonceRequired, ProofError
from wardgate.dpop.thumb import thumbprint

# proof.py (joserfc, the key import) is imported by its users: the supervisor reads only
# nonce.NONCE_KEY_ENV and should not load the JOSE stack for it
__all__ = ["NonceRequired", "ProofError", "thumbprint"]
