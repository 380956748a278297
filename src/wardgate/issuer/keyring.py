"""The running issuer's view of its keys: private keys imported once, the JWKS, verify keys."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from joserfc.jwk import KeySet

from wardgate.issuer import keys
from wardgate.issuer.db import Database


class KeysUnavailable(RuntimeError):
    pass


class KeyRing:
    """Replaced whole by `reload`; read without locks from any thread.

    `signer` also runs on SQLite's connection thread (inside a refresh grant's transaction,
    `rawsql`), concurrently with a reload on the event loop: the rows and the private keys
    are one tuple, swapped in one assignment, so a reader never pairs old rows with new keys.
    """

    def __init__(self) -> None:
        self._signing: tuple[list[keys.KeyRow], dict[str, keys.PrivateKey]] = ([], {})
        self.jwks: dict[str, Any] = {"keys": []}
        self.verify_set = KeySet([])

    async def reload(self, db: Database, now: int) -> None:
        async with db.begin() as conn:
            rows = await keys.list_keys(conn)
        private = {}
        known = self._signing[1]
        for row in rows:
            if not row.published_at(now):
                continue
            if row.kid in known:
                private[row.kid] = known[row.kid]
            elif row.retire_at is None or row.retire_at > now:
                pem = await asyncio.to_thread(Path(row.private_path).read_bytes)
                private[row.kid] = await asyncio.to_thread(keys.import_private, row.alg, pem)
        published = [r for r in rows if r.published_at(now)]
        self._signing = (rows, private)
        self.jwks = {"keys": [r.public_jwk for r in published]}
        self.verify_set = KeySet.import_key_set(self.jwks)  # type: ignore[arg-type]

    def signer(self, now: int) -> tuple[str, str, keys.PrivateKey]:
        rows, private = self._signing
        row = keys.current_signer(rows, now)
        if row is None or row.kid not in private:
            raise KeysUnavailable("no signing key is active")
        return row.kid, row.alg, private[row.kid]

    def algorithms(self) -> list[str]:
        return sorted({str(k["alg"]) for k in self.jwks["keys"]})
