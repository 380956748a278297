"""The gateway's revocation set: sans-I/O, one per worker, fed by a feed adapter.

`check` is what the auth filter calls on every request (cache hits and per-connection memos
included): a provider compare and at most three dict lookups, no I/O, no allocation. An entry
stays until the last token it covers has expired, plus the provider's leeway (the verifier
still accepts a token that long after its `exp`), so memory is bounded by live tokens.

"Issued before T" compares the token's `iat` with T: a token without a numeric `iat` cannot
show it was issued after T and is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from wardgate.revoke.events import Revocation

if TYPE_CHECKING:
    from wardgate.auth.identity import Identity


def _client_of(claims: dict) -> object:
    # RFC 9068 §2.2 client_id; OIDC tokens name it azp
    c = claims.get("client_id")
    return c if c is not None else claims.get("azp")


class RevocationSet:
    def __init__(self, provider: str, leeway_s: float = 0.0) -> None:
        self.provider = provider
        self.leeway_s = leeway_s
        self.jtis: dict[str, float] = {}                      # jti -> keep until
        self.subs: dict[str, tuple[float, float]] = {}        # sub -> (before, keep until)
        self.clients: dict[Any, tuple[float, float]] = {}     # client_id -> (before, keep until)
        self.cursor = 0           # the highest issuer seq applied
        self.applied = 0          # events that changed the set (for metrics)
        self.rejected = 0         # events that did not validate (counted by the adapters)
        self.check: Callable[[Identity], bool] = self._compile()

    def _compile(self) -> Callable[[Identity], bool]:
        provider, jtis, subs, clients = self.provider, self.jtis, self.subs, self.clients

        def revoked(ident: Identity) -> bool:
            if ident.provider != provider:
                return False
            jti = ident.jti
            if jti is not None and jti in jtis:
                return True
            if subs:
                entry = subs.get(ident.sub)  # type: ignore[arg-type]
                if entry is not None:
                    iat = ident.claims.get("iat")
                    if not isinstance(iat, int | float) or iat < entry[0]:
                        return True
            if clients:
                entry = clients.get(_client_of(ident.claims))
                if entry is not None:
                    iat = ident.claims.get("iat")
                    if not isinstance(iat, int | float) or iat < entry[0]:
                        return True
            return False

        return revoked

    def __len__(self) -> int:
        return len(self.jtis) + len(self.subs) + len(self.clients)

    def apply(self, events: Iterable[Revocation], now: float) -> list[Revocation]:
        """Add a batch; returns the events that changed the set (already expired ones and
        repeats do not). Idempotent: a feed may replay its whole log after a reconnect."""
        changed: list[Revocation] = []
        horizon = now - self.leeway_s
        for ev in events:
            if ev.seq > self.cursor:
                self.cursor = ev.seq
            if ev.until <= horizon:
                continue
            if ev.kind == "jti":
                old = self.jtis.get(ev.value)
                if old is None or old < ev.until:
                    self.jtis[ev.value] = ev.until
                    if old is None:
                        changed.append(ev)
                continue
            table = self.subs if ev.kind == "sub" else self.clients
            prev = table.get(ev.value)
            if prev is None or prev[0] < ev.before or prev[1] < ev.until:
                table[ev.value] = (max(ev.before, prev[0]) if prev else ev.before,
                                   max(ev.until, prev[1]) if prev else ev.until)
                if prev is None or prev[0] < ev.before:
                    changed.append(ev)
        self.applied += len(changed)
        return changed

    def expire(self, now: float) -> int:
        """Forget entries whose tokens have all expired; returns how many went."""
        horizon = now - self.leeway_s
        gone = [j for j, until in self.jtis.items() if until <= horizon]
        for j in gone:
            del self.jtis[j]
        n = len(gone)
        for table in (self.subs, self.clients):
            old = [k for k, (_, until) in table.items() if until <= horizon]
            for k in old:
                del table[k]
            n += len(old)
        return n

    def sizes(self) -> dict[str, int]:
        return {"jti": len(self.jtis), "sub": len(self.subs), "client": len(self.clients)}
