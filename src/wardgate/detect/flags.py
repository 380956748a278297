"""Tokens, subjects and networks under a verdict, until when, and why (no I/O).

The compiled route step (step.py) reads the three dicts directly. While nothing is flagged
the step is not even called: `on_arm` hooks hear when the first flag is set (armed) and when
the last one is swept (disarmed), and the detection adapter puts each route's step in place
or takes it out (a call per request saved on every watched route). Times are the gateway
loop's clock, the one every request's `start` is stamped with, so the step needs no clock of
its own."""

from __future__ import annotations

from collections.abc import Callable

from wardgate.detect.verdict import KEY_JTI, KEY_NET, KEY_SUB, Finding


class Flag:
    __slots__ = ("until", "kind", "score", "header")

    def __init__(self, until: float, kind: str, score: float) -> None:
        self.until = until
        self.kind = kind
        self.score = score
        # the risk header's value, rendered once per flag (RFC 9651 Structured Field:
        # a Decimal item with the kind as a parameter)
        self.header = b"%.2f;kind=%s" % (min(score, 999.0), kind.encode())


class Flags:
    __slots__ = ("jti", "sub", "net", "cap", "armed", "on_arm")

    def __init__(self, cap: int) -> None:
        self.jti: dict[str, Flag] = {}
        self.sub: dict[str, Flag] = {}
        self.net: dict[str, Flag] = {}
        self.cap = cap
        self.armed = False  # whether any flag is held
        #: called with True when the first flag is set, with False when the last one goes
        self.on_arm: list[Callable[[bool], None]] = []

    def _arm(self, armed: bool) -> None:
        self.armed = armed
        for hook in self.on_arm:
            hook(armed)

    def _table(self, key_type: str) -> dict[str, Flag]:
        return {KEY_JTI: self.jti, KEY_SUB: self.sub, KEY_NET: self.net}[key_type]

    def set(self, key_type: str, key: str, until: float, finding: Finding) -> Flag:
        """Flag `key` until `until` (extends, never shortens, a flag already held)."""
        table = self._table(key_type)
        old = table.get(key)
        if old is not None and old.until >= until and old.score >= finding.score:
            return old
        if old is None and len(table) >= self.cap:
            for k in list(table)[: max(1, self.cap // 16)]:
                del table[k]
        flag = Flag(max(until, old.until if old else until), finding.kind,
                    max(finding.score, old.score if old else 0.0))
        table[key] = flag
        if not self.armed:
            self._arm(True)
        return flag

    def sweep(self, now: float) -> int:
        """Forget expired flags; how many went."""
        gone = 0
        for table in (self.jti, self.sub, self.net):
            dead = [k for k, f in table.items() if f.until <= now]
            for k in dead:
                del table[k]
            gone += len(dead)
        if self.armed and not (self.jti or self.sub or self.net):
            self._arm(False)
        return gone

    def __len__(self) -> int:
        return len(self.jti) + len(self.sub) + len(self.net)
