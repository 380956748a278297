"""One DPoP proof checked against one request (RFC 9449 §4.3). Sans-I/O: time is passed in.

Order: size cap and strict compact parse (wardgate.auth.compact: no duplicate members, no
stray encodings) -> header: `typ` dpop+jwt, `alg` from the allow-list (asymmetric only, so
never `none` or HS*), `jwk` a public key that fits `alg` -> signature with that key -> claims:
`jti`, `htm`, `htu`, `iat` inside the window, `ath`, the key's thumbprint against `cnf.jkt`,
and the server nonce when one is required.

A client signs its proofs with one key, so their header segment repeats: the header checks,
the key import (10-45 µs, jose-facts) and the thumbprint are done once per distinct header
segment and remembered (bounded), and a proof then costs one parse and one signature check.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Collection
from typing import Any, NamedTuple

from joserfc.errors import JoseError

from wardgate.auth import compact
from wardgate.auth.errors import Rejected
from wardgate.auth.keys import KeyImportError, VerificationKey, key_from_jwk
from wardgate.config.auth import ASYMMETRIC_ALGS
from wardgate.dpop import htu as htu_mod
from wardgate.dpop.errors import NonceRequired, ProofError
from wardgate.dpop.nonce import NonceSource
from wardgate.dpop.thumb import b64url, thumbprint

TYP = "dpop+jwt"  # RFC 9449 §4.2
# RFC 7517 §9.2 / RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2: members only a private key has
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
# the header may not carry another key reference, a critical extension or b64 (RFC 7515/7797)
_FORBIDDEN = ("jku", "x5u", "x5c", "crit", "b64")
_HEADER_MEMO_MAX = 1024
_ATH_MEMO_MAX = 1024
_MAX_JTI = 256


class Proof(NamedTuple):
    jkt: str         # RFC 7638 thumbprint of the proof's key
    jti: str
    iat: float
    stale_nonce: bool  # the nonce was last step's: send the current one along


class _Header(NamedTuple):
    key: VerificationKey
    jkt: str


class ProofVerifier:
    def __init__(self, algorithms: Collection[str], *, max_age_s: float, max_future_s: float,
                 max_bytes: int = 4096, nonces: NonceSource | None = None,
                 min_rsa_bits: int = 2048) -> None:
        algs = frozenset(algorithms)
        if not algs or not algs <= ASYMMETRIC_ALGS:
            raise ValueError("DPoP algorithms must be a non-empty set of asymmetric algorithms")
        self.algorithms = algs
        # the `algs` challenge parameter, in the configured order (preference first)
        self.algs_value = " ".join(dict.fromkeys(algorithms))
        self.max_age_s = float(max_age_s)
        self.max_future_s = float(max_future_s)
        self.max_bytes = max_bytes
        self.nonces = nonces
        self.min_rsa_bits = min_rsa_bits
        self._headers: dict[bytes, _Header] = {}
        self._parsed: compact.HeaderMemo = {}
        # token -> its `ath` (a bound token is used for many requests; SHA-256 and base64url
        # of ~700 bytes cost ~3.5 µs). Keyed by the exact token bytes, as `ath` is computed;
        # the gateway asks only for tokens it has verified, so the memo holds no junk
        self._aths: dict[bytes, str] = {}

    @property
    def window_s(self) -> float:
        """How long a proof's jti must be remembered: every iat this verifier accepts."""
        return self.max_age_s + self.max_future_s

    def verify(self, proof: bytes, *, method: str, uri: str, now: float,
               access_token: bytes | None = None, jkt: str | None = None) -> Proof:
        """Raise ProofError (or NonceRequired) unless `proof` is good for this request.

        `uri` is the request's normalised target URI (htu.request_uri); `access_token` the
        token the request presents (its hash must be `ath`); `jkt` the token's `cnf.jkt`.
        """
        try:
            parts = compact.split(proof, self.max_bytes, self._parsed)
        except Rejected as exc:
            raise ProofError("malformed" if exc.reason != "oversize" else "oversize") from None
        head = self._headers.get(parts.header_segment)
        if head is None:
            head = self._header(parts.header)
            if len(self._headers) >= _HEADER_MEMO_MAX:
                self._headers.clear()
            self._headers[parts.header_segment] = head
        try:
            ok = head.key.check(parts.signing_input, parts.signature)
        except (JoseError, TypeError, ValueError, RecursionError):
            ok = False
        if not ok:
            raise ProofError("bad_signature")
        claims = parts.claims
        jti = claims.get("jti")
        if type(jti) is not str or not jti or len(jti) > _MAX_JTI:
            raise ProofError("bad_jti")
        if claims.get("htm") != method:  # RFC 9110 §9.1: method names are case-sensitive
            raise ProofError("bad_htm")
        htu = claims.get("htu")
        if type(htu) is not str or len(htu) > 4096:
            raise ProofError("bad_htu")
        if htu != uri and htu_mod.normalise(htu) != uri:
            raise ProofError("bad_htu")
        iat = claims.get("iat")
        if not (type(iat) is int or type(iat) is float and math.isfinite(iat)):
            raise ProofError("bad_iat")
        if iat < now - self.max_age_s:
            raise ProofError("iat_too_old")
        if iat > now + self.max_future_s:
            raise ProofError("iat_in_future")
        if access_token is not None:
            ath = claims.get("ath")
            if type(ath) is not str:
                raise ProofError("missing_ath")
            expected = self._aths.get(access_token)
            if expected is None:
                # RFC 9449 §4.2: base64url(SHA-256(ASCII(access token)))
                expected = b64url(hashlib.sha256(access_token).digest())
                if len(self._aths) >= _ATH_MEMO_MAX:
                    self._aths.clear()
                self._aths[access_token] = expected
            if not hmac.compare_digest(ath, expected):
                raise ProofError("bad_ath")
        if jkt is not None and not hmac.compare_digest(head.jkt, jkt):
            raise ProofError("key_mismatch")  # RFC 9449 §7.1: the token is bound to another key
        stale = False
        nonces = self.nonces
        if nonces is not None:
            state = nonces.check(claims.get("nonce"), now)
            if not state:
                raise NonceRequired(nonces.current(now),
                                    "nonce_required" if "nonce" not in claims else "bad_nonce")
            stale = state == 1
        return Proof(head.jkt, jti, float(iat), stale)

    def _header(self, header: dict[str, Any]) -> _Header:
        typ = header.get("typ")
        # RFC 7515 §4.1.9: media types compare case-insensitively, "application/" optional
        if type(typ) is not str or typ.lower().removeprefix("application/") != TYP:
            raise ProofError("bad_typ")
        alg = header.get("alg")
        if type(alg) is not str or alg not in self.algorithms:
            raise ProofError("bad_alg")  # none, HS* and anything not listed (RFC 9449 §4.3)
        for name in _FORBIDDEN:
            if name in header:
                raise ProofError("bad_header")
        jwk = header.get("jwk")
        if type(jwk) is not dict:
            raise ProofError("missing_jwk")
        if any(m in jwk for m in _PRIVATE_MEMBERS):
            raise ProofError("private_key")  # RFC 9449 §4.3 step 7
        declared = jwk.get("alg")
        if declared is not None and declared != alg:
            raise ProofError("bad_jwk")
        try:
            key = key_from_jwk({**jwk, "alg": alg}, (alg,), self.min_rsa_bits)
            jkt = thumbprint(jwk)
        except (KeyImportError, ValueError):
            raise ProofError("bad_jwk") from None
        return _Header(key, jkt)
