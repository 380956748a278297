"""Verification keys: import (JWK, PEM, HMAC secret), size checks, and the binding of each key
to exactly one algorithm. A KeyRing holds one provider's current keys, sans-I/O.

Keys are imported once, when loaded (importing per request costs 10-45 µs, see jose-facts.md).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import warnings
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from wardgate.auth.registries import OneAlgRegistry
from wardgate.config.auth import EC_ALGS, HMAC_ALGS, OKP_ALGS, RSA_ALGS

log = logging.getLogger("wardgate.auth")

_EC_CURVE = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}  # RFC 7518 §3.2: key >= hash size


class KeyImportError(ValueError):
    pass


_REGISTRIES: dict[str, OneAlgRegistry] = {}


def registry_for(alg: str) -> OneAlgRegistry:
    reg = _REGISTRIES.get(alg)
    if reg is None:
        reg = _REGISTRIES[alg] = OneAlgRegistry(alg)
    return reg


@dataclass(eq=False)
class VerificationKey:
    """One public key (or HMAC secret) bound to one algorithm.

    `algo` is joserfc's algorithm model for `alg`, resolved (and checked against the key) once
    at import, so verifying is a single call: `check(signing_input, signature)`. `alive` turns
    False when the key leaves its key set; cached tokens it verified die with it.
    """

    kid: str | None
    alg: str
    key: Any
    registry: OneAlgRegistry = field(repr=False)
    algo: Any = field(default=None, repr=False)
    alive: bool = True
    check: Any = field(default=None, repr=False)  # (signing_input, signature) -> bool

    def __post_init__(self) -> None:
        if self.algo is None:
            self.algo = self.registry.get_alg(self.alg)
            try:
                self.algo.check_key(self.key)  # key type and curve fit the algorithm
            except Exception as exc:  # noqa: BLE001 - joserfc key errors vary
                raise KeyImportError(f"key does not fit {self.alg}: {exc}") from None
        if self.check is None:
            self.check = (_rsa_check(self.alg, self.key) or _ec_check(self.alg, self.key)
                          or _library_check(self.algo, self.key))


def _library_check(algo: Any, key: Any) -> Any:
    verify = algo.verify
    return lambda msg, sig: verify(msg, sig, key)


T = TypeVar("T")


def _fast_path_key(table: dict[str, T], alg: str, key: Any) -> tuple[T, Any] | None:
    """At key load: `alg`'s entry in a fast verifier's table and the key's public verifying
    object; None when `alg` has no entry or the key's use/key_ops forbid verifying."""
    spec = table.get(alg)
    if spec is None:
        return None
    try:
        return spec, key.get_op_key("verify")
    except Exception:  # noqa: BLE001 - joserfc's key-operation errors vary
        return None


# RFC 8017 §9.2 note 1: the DER DigestInfo of each hash, up to the digest itself
_PKCS1_DIGEST_INFO = {
    "RS256": (hashlib.sha256, bytes.fromhex("3031300d060960864801650304020105000420")),
    "RS384": (hashlib.sha384, bytes.fromhex("3041300d060960864801650304020205000430")),
    "RS512": (hashlib.sha512, bytes.fromhex("3051300d060960864801650304020305000440")),
}


def _rsa_check(alg: str, key: Any) -> Any:
    """RS256/384/512 straight on `cryptography`, as RFC 8017 §8.2.2 defines the check: the
    signature is exactly k octets, the RSA public operation with the PKCS #1 v1.5 type-1 padding
    removed (OpenSSL checks 00 01 FF..FF 00) leaves exactly DigestInfo(hash(signing input)).

    The same decision as joserfc's RSAAlgorithm.verify (`verify` with padding and hash), at
    ~1.4 µs less per token (~18.8 vs ~20.2 µs): the digest comes from hashlib and no hash or
    padding object is type-checked per call. tests/auth/test_signature.py checks both agree on
    valid, crafted and mutated signatures. None for every other algorithm, and for a key whose
    `use`/`key_ops` forbid verifying (joserfc then refuses it on every call, as before)."""
    found = _fast_path_key(_PKCS1_DIGEST_INFO, alg, key)
    if found is None:
        return None
    (new_hash, digest_info), public = found
    recover, pkcs1 = public.recover_data_from_signature, padding.PKCS1v15()
    size = (public.key_size + 7) // 8
    compare = hmac.compare_digest

    def check(msg: bytes, sig: bytes) -> bool:
        if len(sig) != size:
            return False  # step 1; the public operation alone would also take a shorter one
        try:
            data = recover(sig, pkcs1, None)  # None: the whole DigestInfo, not just the digest
        except InvalidSignature:
            return False
        return compare(data, digest_info + new_hash(msg).digest())
    return check


_EC_HASH = {"ES256": (hashes.SHA256, 32), "ES384": (hashes.SHA384, 48),
            "ES512": (hashes.SHA512, 66)}


def _ec_check(alg: str, key: Any) -> Any:
    """ES256/384/512 as joserfc's ESAlgorithm.verify decides (RFC 7518 §3.4: R || S, each
    exactly the curve's octet length, then ECDSA over the signing input), with the public key
    and the ECDSA(hash) object resolved once instead of on every call: a DPoP route checks one
    per request. tests/auth/test_signature.py checks both agree. None for other algorithms and
    for a key whose use/key_ops forbid verifying (joserfc then refuses it on every call)."""
    found = _fast_path_key(_EC_HASH, alg, key)
    if found is None:
        return None
    (hash_cls, size), public = found
    if (key.curve_key_size + 7) // 8 != size:
        return None  # a curve that does not fit: joserfc's check_key refused it already
    verify, ecdsa = public.verify, ec.ECDSA(hash_cls())
    from_bytes = int.from_bytes

    def check(msg: bytes, sig: bytes) -> bool:
        if len(sig) != 2 * size:
            return False
        try:
            verify(encode_dss_signature(from_bytes(sig[:size], "big"),
                                        from_bytes(sig[size:], "big")), msg, ecdsa)
        except InvalidSignature:
            return False
        return True
    return check


def _family(kty: str, crv: str | None) -> frozenset[str]:
    if kty == "RSA":
        return RSA_ALGS
    if kty == "EC":
        return frozenset(a for a, c in _EC_CURVE.items() if c == crv)
    if kty == "OKP" and crv in _OKP_CURVES:
        return OKP_ALGS
    return frozenset()


def _bind_alg(declared: object, kty: str, crv: str | None, allowed: Collection[str]) -> str:
    fits = _family(kty, crv) & set(allowed)
    if declared is not None:
        if not isinstance(declared, str) or declared not in fits:
            raise KeyImportError(f"alg {declared!r} does not fit this {kty} key or is not allowed")
        return declared
    if len(fits) != 1:
        # a key without alg would verify every allowed algorithm of its type (jose-facts §8)
        raise KeyImportError(f"{kty} key has no alg and {len(fits)} allowed algorithms fit it")
    return next(iter(fits))


def _check_strength(key: Any, alg: str, min_rsa_bits: int) -> None:
    if key.is_private:
        raise KeyImportError("private key material in a public key set")
    if alg in RSA_ALGS:
        bits = key.raw_value.key_size
        if bits < min_rsa_bits:
            raise KeyImportError(f"RSA key of {bits} bits is below min_rsa_bits {min_rsa_bits}")
    elif alg in EC_ALGS:
        if key.curve_name != _EC_CURVE[alg]:
            raise KeyImportError(f"{alg} needs curve {_EC_CURVE[alg]}, key is {key.curve_name}")


def key_from_jwk(jwk: object, allowed: Collection[str], min_rsa_bits: int = 2048) -> VerificationKey:
    """Import one JWK (RFC 7517 §4) for signature verification."""
    if not isinstance(jwk, dict):
        raise KeyImportError("a JWK must be an object")
    kty = jwk.get("kty")
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise KeyImportError("kid must be a non-empty string")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise KeyImportError(f"use {use!r} is not 'sig'")  # RFC 7517 §4.2
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise KeyImportError("key_ops does not include 'verify'")  # RFC 7517 §4.3
    if kty not in ("RSA", "EC", "OKP"):
        # symmetric keys never come from a key set: they are secrets, not published keys
        raise KeyImportError(f"unsupported kty {kty!r}")
    crv = jwk.get("crv") if isinstance(jwk.get("crv"), str) else None
    alg = _bind_alg(jwk.get("alg"), kty, crv, allowed)
    public = {k: v for k, v in jwk.items() if k not in ("alg", "use", "key_ops", "kid")}
    try:
        cls = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}[kty]
        with warnings.catch_warnings():
            # joserfc warns about short keys; _check_strength below refuses them outright
            warnings.simplefilter("ignore", SecurityWarning)
            key = cls.import_key(public)  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - any import failure is a bad key, never a crash
        raise KeyImportError(f"cannot import {kty} key: {type(exc).__name__}") from None
    _check_strength(key, alg, min_rsa_bits)
    return VerificationKey(kid, alg, key, registry_for(alg))


def key_from_pem(pem: bytes, alg: str | None, kid: str | None, allowed: Collection[str],
                 min_rsa_bits: int = 2048) -> VerificationKey:
    """Import an inline PEM public key (SubjectPublicKeyInfo)."""
    key: Any = None
    for cls in (RSAKey, ECKey, OKPKey):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SecurityWarning)
                key = cls.import_key(pem)  # type: ignore[attr-defined]
            break
        except Exception:  # noqa: BLE001,S112 - try the next key type
            continue
    if key is None:
        raise KeyImportError("not a PEM public key (RSA, EC or OKP)")
    crv = getattr(key, "curve_name", None)
    bound = _bind_alg(alg, key.key_type, crv, allowed)
    _check_strength(key, bound, min_rsa_bits)
    return VerificationKey(kid, bound, key, registry_for(bound))


def key_from_secret(secret: bytes, alg: str, kid: str | None = None) -> VerificationKey:
    """An HMAC key bound to one HS* algorithm, checked against RFC 7518 §3.2."""
    if alg not in HMAC_ALGS:
        raise KeyImportError(f"{alg} is not an HMAC algorithm")
    if len(secret) < _HMAC_MIN_BYTES[alg]:
        raise KeyImportError(f"{alg} needs a secret of at least {_HMAC_MIN_BYTES[alg] * 8} bits")
    return VerificationKey(kid, alg, OctKey.import_key(secret), registry_for(alg))


def import_jwks(doc: object, allowed: Collection[str], min_rsa_bits: int = 2048
                ) -> tuple[list[VerificationKey], list[str]]:
    """Import a JWK Set (RFC 7517 §5). Unusable keys are skipped and reported.

    A duplicate kid makes the whole set invalid: which key a token meant would be ambiguous.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise KeyImportError("not a JWK Set: expected an object with a 'keys' array")
    keys: list[VerificationKey] = []
    problems: list[str] = []
    # Only string kids can name a key (a non-string kid fails that key's import below); an
    # object or array kid must not reach the set (unhashable: a TypeError, found by fuzzing).
    kids = [k.get("kid") for k in doc["keys"] if isinstance(k, dict)
            and isinstance(k.get("kid"), str)]
    dup = {k for k in kids if kids.count(k) > 1}
    if dup:
        raise KeyImportError(f"duplicate kid(s) {sorted(map(str, dup))}")
    for i, jwk in enumerate(doc["keys"]):
        try:
            keys.append(key_from_jwk(jwk, allowed, min_rsa_bits))
        except KeyImportError as exc:
            kid = jwk.get("kid") if isinstance(jwk, dict) else None
            problems.append(f"key {i} (kid {kid!r}): {exc}")
    return keys, problems


class KeyRing:
    """The current keys of one provider, indexed by kid. Sans-I/O: loaders call `replace`."""

    def __init__(self) -> None:
        self._by_kid: dict[str | None, VerificationKey] = {}
        self._only: VerificationKey | None = None
        self.loaded = False

    def replace(self, keys: Iterable[VerificationKey]) -> tuple[int, int]:
        """Install a new key set; keys no longer present die. Returns (added, removed)."""
        new: dict[str | None, VerificationKey] = {}
        for k in keys:
            old = self._by_kid.get(k.kid)
            # keep the existing object when the key is unchanged so its cache entries live on
            if old is not None and old.alg == k.alg and old.key.thumbprint() == k.key.thumbprint():
                new[k.kid] = old
            else:
                new[k.kid] = k
        removed = [k for kid, k in self._by_kid.items() if new.get(kid) is not k]
        for k in removed:
            k.alive = False
        added = sum(1 for kid, k in new.items() if self._by_kid.get(kid) is not k)
        self._by_kid = new
        self._only = next(iter(new.values())) if len(new) == 1 else None
        self.loaded = True
        return added, len(removed)

    def kill_all(self) -> None:
        """Stale beyond the bound: keys (and the tokens they verified) are no longer trusted."""
        for k in self._by_kid.values():
            k.alive = False
        self._by_kid = {}
        self._only = None

    def lookup(self, kid: str | None) -> VerificationKey | None:
        if kid is None:
            # RFC 7515 §4.1.4: without kid the key must be unambiguous
            return self._only
        key = self._by_kid.get(kid)
        if key is None and self._only is not None and self._only.kid is None:
            return self._only  # a lone key without kid (inline PEM, secret) matches any kid
        return key

    def __len__(self) -> int:
        return len(self._by_kid)

    def kids(self) -> list[str | None]:
        return list(self._by_kid)

    def describe(self) -> list[dict[str, str | None]]:
        """kid and alg of each key (no key material): what the admin API shows."""
        return [{"kid": kid, "alg": k.alg} for kid, k in self._by_kid.items()]
