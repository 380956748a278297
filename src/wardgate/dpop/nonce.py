"""Server-provided nonces (RFC 9449 §8 for resource servers, §9 for the issuer), stateless.

A nonce names a time step and carries an HMAC of it: `base64url(step(8) || HMAC(key, step)[:16])`.
It is good during its own step and the next one, so every worker (and every gateway holding
the same key) accepts the nonces of every other without sharing state, and a client always
has at least one full step to use the nonce it was given. Sans-I/O: the clock is passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

#: the environment variable `wardgate run` hands its workers the run's nonce key in (hex)
NONCE_KEY_ENV = "WARDGATE_DPOP_NONCE_KEY"


def run_key(parent: bytes) -> str:
    """The per-run nonce key (hex) derived from the supervisor's run key."""
    return hmac.new(parent, b"wardgate dpop nonce", hashlib.sha256).hexdigest()


class NonceSource:
    __slots__ = ("_key", "_step_s", "_cache")

    def __init__(self, key: bytes, step_s: float) -> None:
        if len(key) < 16:
            raise ValueError("a nonce key needs at least 128 bits")
        self._key = key
        self._step_s = float(step_s)
        self._cache: tuple[int, str] = (-1, "")

    def _make(self, step: int) -> str:
        raw = struct.pack(">Q", step)
        mac = hmac.new(self._key, raw, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(raw + mac).rstrip(b"=").decode("ascii")

    def current(self, now: float) -> str:
        """The nonce to hand out now (built once per step)."""
        step = int(now // self._step_s)
        cached = self._cache
        if cached[0] != step:
            cached = self._cache = (step, self._make(step))
        return cached[1]

    def check(self, nonce: object, now: float) -> int:
        """2: the current nonce; 1: last step's (still good; send the new one along);
        0: unknown, forged or expired."""
        if not isinstance(nonce, str) or len(nonce) != 32:
            return 0
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return 0
        if len(raw) != 24:
            return 0
        (step,) = struct.unpack(">Q", raw[:8])
        current = int(now // self._step_s)
        if step not in (current, current - 1):
            return 0
        if not hmac.compare_digest(nonce, self._make(step)):
            return 0  # also refuses other spellings of the same bytes
        return 2 if step == current else 1
