"""What the proof checks report. `reason` is a short code for logs and metrics; it never
reaches the client beyond the generic description the adapter picks."""

from __future__ import annotations


class ProofError(Exception):
    """The DPoP proof is missing, malformed or does not fit the request (invalid_dpop_proof)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NonceRequired(ProofError):
    """The proof is valid but carries no nonce, or a stale one (RFC 9449 §8: use_dpop_nonce).
    `nonce` is the fresh value to send in `DPoP-Nonce`."""

    def __init__(self, nonce: str, reason: str = "nonce_required") -> None:
        super().__init__(reason)
        self.nonce = nonce
