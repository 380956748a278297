"""Differential test of the lean RS256/384/512 signature check (keys._rsa_check) against
joserfc's RSAAlgorithm.verify, which it replaces on the hot path: on valid signatures, on
generated mutations of them (bit flips, truncation, extension, other messages, other keys,
other paddings and hashes, 0 and n-1) both must say the same thing."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wardgate.auth.keys import VerificationKey, key_from_jwk

from .helpers import public_jwk

_HASH = {"RS256": hashes.SHA256(), "RS384": hashes.SHA384(), "RS512": hashes.SHA512()}


@functools.cache
def _private(bits: int, n: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def _key(alg: str, bits: int) -> VerificationKey:
    return key_from_jwk(public_jwk(_private(bits), alg, f"k-{alg}-{bits}"), [alg])


def _library(key: VerificationKey, msg: bytes, sig: bytes) -> Any:
    try:
        return key.algo.verify(msg, sig, key.key)
    except Exception as exc:  # noqa: BLE001 - compared by type below
        return type(exc)


def _lean(key: VerificationKey, msg: bytes, sig: bytes) -> Any:
    try:
        return key.check(msg, sig)
    except Exception as exc:  # noqa: BLE001
        return type(exc)


def _sign(alg: str, bits: int, msg: bytes) -> bytes:
    return _private(bits).sign(msg, padding.PKCS1v15(), _HASH[alg])


CASES = [(alg, bits) for alg in ("RS256", "RS384", "RS512") for bits in (2048, 3072)]


@pytest.mark.parametrize(("alg", "bits"), CASES)
def test_the_lean_path_is_the_one_in_use_and_accepts_what_joserfc_accepts(alg: str, bits: int) -> None:
    key = _key(alg, bits)
    assert key.check.__qualname__.startswith("_rsa_check")  # not the generic fallback
    msg = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0"
    sig = _sign(alg, bits, msg)
    assert _lean(key, msg, sig) is True
    assert _library(key, msg, sig) is True


@pytest.mark.parametrize(("alg", "bits"), CASES)
def test_fixed_invalid_signatures_are_refused_by_both(alg: str, bits: int) -> None:
    key = _key(alg, bits)
    msg = b"header.payload"
    good = _sign(alg, bits, msg)
    n = _private(bits).public_key().public_numbers().n
    size = bits // 8
    other_alg = "RS512" if alg != "RS512" else "RS256"
    bad = {
        "empty": b"",
        "zero": bytes(size),
        "n-1": (n - 1).to_bytes(size, "big"),
        "n": n.to_bytes(size, "big"),
        "all-ff": b"\xff" * size,
        "short": good[:-1],
        "long": good + b"\x00",
        "leading-zero": b"\x00" + good,
        "other message": _sign(alg, bits, msg + b"x"),
        "other hash": _private(bits).sign(msg, padding.PKCS1v15(), _HASH[other_alg]),
        "pss": _private(bits).sign(msg, padding.PSS(padding.MGF1(_HASH[alg]), 32), _HASH[alg]),
        "other key": _private(bits, 1).sign(msg, padding.PKCS1v15(), _HASH[alg]),
    }
    for name, sig in bad.items():
        lean, lib = _lean(key, msg, sig), _library(key, msg, sig)
        assert lean == lib, name
        assert lean is not True, name
    assert _lean(key, msg + b".", good) is False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alg_bits=st.sampled_from(CASES), msg=st.binary(max_size=600),
       flips=st.lists(st.integers(min_value=0), max_size=3), cut=st.integers(-4, 4),
       tamper_msg=st.booleans())
def test_mutated_signatures_agree_with_joserfc(alg_bits: tuple[str, int], msg: bytes,
                                               flips: list[int], cut: int, tamper_msg: bool) -> None:
    alg, bits = alg_bits
    key = _key(alg, bits)
    good = _sign(alg, bits, msg)
    sig = bytearray(good)
    for f in flips:
        sig[f % len(sig)] ^= 1 << (f // len(sig) % 8)
    sig_b = bytes(sig)
    if cut < 0:
        sig_b = sig_b[:cut]
    elif cut > 0:
        sig_b = sig_b + bytes(cut)
    if tamper_msg:
        msg = msg + b"\x00"
    lean, lib = _lean(key, msg, sig_b), _library(key, msg, sig_b)
    assert lean == lib
    assert lean is (sig_b == good and not tamper_msg)  # flips can cancel out


def test_other_algorithms_keep_joserfc() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    ps = key_from_jwk(public_jwk(_private(2048), "PS256", "p"), ["PS256"])
    es = key_from_jwk(public_jwk(ec.generate_private_key(ec.SECP256R1()), "ES256", "e"), ["ES256"])
    for key in (ps, es):
        assert not key.check.__qualname__.startswith("_rsa_check")
