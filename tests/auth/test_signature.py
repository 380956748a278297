"""Differential test of the lean RS256/384/512 signature check (keys._rsa_check) against
joserfc's RSAAlgorithm.verify (and of keys._ec_check against ESAlgorithm.verify, below), which it replaces on the hot path: on valid signatures, on
generated mutations of them (bit flips, truncation, extension, other messages, other keys,
other paddings and hashes, 0 and n-1) both must say the same thing."""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wardgate.auth.keys import VerificationKey, key_from_jwk

from .helpers import public_jwk

_HASH = {"RS256": hashes.SHA256(), "RS384": hashes.SHA384(), "RS512": hashes.SHA512()}


def made_by(check: Any) -> str:
    """The function that built a key's check: its closure's qualified name (a compiled
    closure, src/wardgate/_native.py, is an object whose type is named check_<maker>_obj)."""
    name = getattr(check, "__qualname__", None)
    if name is not None:
        return name
    kind = type(check).__name__  # "check__rsa_check_obj"
    return kind.removeprefix("check_").removesuffix("_obj")


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
    assert made_by(key.check).startswith("_rsa_check")  # not the generic fallback
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


_DIGEST_INFO = {"RS256": ("sha256", "3031300d060960864801650304020105000420"),
                "RS384": ("sha384", "3041300d060960864801650304020205000430"),
                "RS512": ("sha512", "3051300d060960864801650304020305000440")}


def _raw_sign(bits: int, em: bytes) -> bytes:
    """The bare RSA private operation over an encoded message of our choosing: signatures whose
    padding or DigestInfo is wrong in exactly one way."""
    priv = _private(bits).private_numbers()
    n = priv.public_numbers.n
    return pow(int.from_bytes(em, "big"), priv.d, n).to_bytes(bits // 8, "big")


def _em(bits: int, data: bytes, block: bytes = b"\x00\x01", fill: int = 0xFF) -> bytes:
    return block + bytes([fill]) * (bits // 8 - len(data) - 3) + b"\x00" + data


@pytest.mark.parametrize(("alg", "bits"), CASES)
def test_crafted_encodings_are_refused_by_both(alg: str, bits: int) -> None:
    """RFC 8017 §8.2.2 encode-and-compare: each encoded message is one small step away from
    the valid one. The control (the valid encoding, raw-signed) must pass."""
    key = _key(alg, bits)
    msg = b"header.payload"
    name, prefix_hex = _DIGEST_INFO[alg]
    digest = hashlib.new(name, msg).digest()
    info = bytes.fromhex(prefix_hex) + digest
    no_null = bytes.fromhex(prefix_hex.replace("0d0609", "0b0609").replace("0500", ""))
    no_null = bytes([no_null[0], no_null[1] - 2]) + no_null[2:] + digest
    garbage = bytearray(_em(bits, info))
    garbage[20] = 0x7F
    ems = {
        "valid (control)": _em(bits, info),
        "DigestInfo without NULL parameters": _em(bits, no_null),
        "DigestInfo with a trailing byte": _em(bits, info + b"\x00"),
        "digest alone, no DigestInfo": _em(bits, digest),
        "block type 2": _em(bits, info, block=b"\x00\x02"),
        "a non-FF padding byte": bytes(garbage),
        "padding of zeros": _em(bits, info, fill=0x00),
        "junk before the DigestInfo": _em(bits, b"\x01" * 20 + info),
    }
    for label, em in ems.items():
        sig = _raw_sign(bits, em)
        lean, lib = _lean(key, msg, sig), _library(key, msg, sig)
        assert lean == lib, label
        assert lean is (label == "valid (control)"), label


def test_a_signature_without_its_leading_zero_octet_is_refused() -> None:
    """RFC 8017 §8.2.2 step 1: exactly k octets. The bare public operation would read a
    signature shorter by its leading zero octets as the same number: a second spelling."""
    key = _key("RS256", 2048)
    for i in range(5000):
        msg = b"header.payload%d" % i
        sig = _sign("RS256", 2048, msg)
        if sig[0] == 0:
            break
    else:
        pytest.fail("no signature with a leading zero octet in 5000 tries")
    assert _lean(key, msg, sig) is True
    assert _lean(key, msg, sig[1:]) is False and _library(key, msg, sig[1:]) is not True


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
    ps = key_from_jwk(public_jwk(_private(2048), "PS256", "p"), ["PS256"])
    assert not made_by(ps.check).startswith(("_rsa_check", "_ec_check"))


# -- ES256/384/512: keys._ec_check against joserfc's ESAlgorithm.verify ----------------------
_CURVES = {"ES256": (ec.SECP256R1, hashes.SHA256, 32), "ES384": (ec.SECP384R1, hashes.SHA384, 48),
           "ES512": (ec.SECP521R1, hashes.SHA512, 66)}


@functools.cache
def _ec_private(alg: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(_CURVES[alg][0]())


@functools.cache
def _ec_key(alg: str) -> VerificationKey:
    return key_from_jwk(public_jwk(_ec_private(alg), alg, f"e-{alg}"), [alg])


def _ec_sign(alg: str, msg: bytes) -> bytes:
    _, hash_cls, size = _CURVES[alg]
    r, s = decode_dss_signature(_ec_private(alg).sign(msg, ec.ECDSA(hash_cls())))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


@pytest.mark.parametrize("alg", list(_CURVES))
def test_the_lean_ec_path_is_in_use_and_agrees_on_fixed_cases(alg: str) -> None:
    key = _ec_key(alg)
    assert made_by(key.check).startswith("_ec_check")
    size = _CURVES[alg][2]
    msg = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0"
    good = _ec_sign(alg, msg)
    order = {32: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551}.get(size)
    r, s = good[:size], good[size:]
    cases = [good, b"", good[:-1], good + b"\0", bytes(2 * size), b"\xff" * (2 * size),
             s + r, r + r, _ec_sign(alg, msg + b"x")]
    if order is not None:  # (r, n - s): the malleable twin both accept (jose-facts)
        cases.append(r + (order - int.from_bytes(s, "big")).to_bytes(size, "big"))
    for sig in cases:
        assert _lean(key, msg, sig) == _library(key, msg, sig), sig.hex()
    assert _lean(key, msg, good) is True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alg=st.sampled_from(list(_CURVES)), msg=st.binary(max_size=600),
       flips=st.lists(st.integers(min_value=0), max_size=3), cut=st.integers(-2, 2),
       tamper_msg=st.booleans())
def test_mutated_ec_signatures_agree_with_joserfc(alg: str, msg: bytes, flips: list[int],
                                                  cut: int, tamper_msg: bool) -> None:
    key = _ec_key(alg)
    good = _ec_sign(alg, msg)
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
    assert lean is (sig_b == good and not tamper_msg)
