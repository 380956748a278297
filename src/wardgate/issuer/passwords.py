"""argon2id password hashing, always off the event loop.

Unknown users are checked against a dummy hash made with the same parameters, so they cost the
same time and get the same answer as a wrong password (no username oracle).
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from wardgate.config.issuer import PasswordHashConfig


class Passwords:
    def __init__(self, cfg: PasswordHashConfig) -> None:
        self._ph = PasswordHasher(time_cost=cfg.time_cost, memory_cost=cfg.memory_cost_kib,
                                  parallelism=cfg.parallelism, type=Type.ID)
        self._dummy = self._ph.hash(secrets.token_urlsafe(16))

    def hash_sync(self, password: str) -> str:
        return self._ph.hash(password)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._ph.hash, password)

    def _verify(self, stored: str | None, password: str) -> tuple[bool, bool]:
        try:
            self._ph.verify(stored or self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, False
        if stored is None:
            return False, False
        return True, self._ph.check_needs_rehash(stored)

    async def verify(self, stored: str | None, password: str) -> tuple[bool, bool]:
        """Return (ok, needs_rehash). `stored=None` (no such user) burns the same time."""
        return await asyncio.to_thread(self._verify, stored, password)
