"""DPoP proofs for tests (RFC 9449 §4.2), built by hand so any malformed shape can be made.

Signatures come from PyJWT's algorithm objects and the thumbprint from hashlib, not from
wardgate or joserfc: what the gateway and the issuer verify is produced independently.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

_ALGS = get_default_algorithms()
_REQUIRED = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
DROP = object()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3: the required members, lexical order, no whitespace, SHA-256."""
    members = {k: jwk[k] for k in sorted(_REQUIRED[jwk["kty"]])}
    return b64(hashlib.sha256(json.dumps(members, separators=(",", ":")).encode()).digest())


def ath(token: str | bytes) -> str:
    raw = token.encode() if isinstance(token, str) else token
    return b64(hashlib.sha256(raw).digest())


class DpopKey:
    """A client's DPoP key pair and the proofs it signs."""

    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        if alg == "ES256":
            self.private: Any = ec.generate_private_key(ec.SECP256R1())
        elif alg == "EdDSA":
            self.private = ed25519.Ed25519PrivateKey.generate()
        elif alg in ("RS256", "PS256"):
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise ValueError(alg)
        algo = _ALGS[alg]
        self.jwk: dict[str, Any] = algo.to_jwk(self.private.public_key(), as_dict=True)
        self.private_jwk: dict[str, Any] = algo.to_jwk(self.private, as_dict=True)
        self.jkt = jwk_thumbprint(self.jwk)

    def sign(self, header: dict[str, Any], claims: dict[str, Any], alg: str | None = None,
             key: Any = None) -> str:
        signing_input = (b64(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + b64(json.dumps(claims, separators=(",", ":")).encode())).encode()
        algo = _ALGS[alg or self.alg]
        sig = algo.sign(signing_input, algo.prepare_key(key if key is not None else self.private))
        return signing_input.decode() + "." + b64(sig)

    def proof(self, method: str, url: str, *, token: str | bytes | None = None,
              nonce: str | None = None, iat: float | None = None, jti: str | None = None,
              header: dict[str, Any] | None = None, claims: dict[str, Any] | None = None) -> str:
        """A proof for `method url`; `header`/`claims` override members (DROP removes one)."""
        h: dict[str, Any] = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk}
        c: dict[str, Any] = {"jti": jti or uuid.uuid4().hex, "htm": method, "htu": url,
                             "iat": int(time.time()) if iat is None else iat}
        if token is not None:
            c["ath"] = ath(token)
        if nonce is not None:
            c["nonce"] = nonce
        for target, over in ((h, header), (c, claims)):
            for k, v in (over or {}).items():
                if v is DROP:
                    target.pop(k, None)
                else:
                    target[k] = v
        return self.sign(h, c)
