"""What a `revoke` verdict revokes, and at most how often (no I/O; the clock is passed in).

A verdict about a token revokes that token (its `jti`, kept until the token's `exp`); one about
a subject revokes the token the subject was using, or, with `revoke.subject`, every token of
the subject issued before now (`sub`, kept `subject_hold_s`). A verdict about a network has
nothing to revoke: the route's step denies it instead. Idempotent: a (kind, value) already
revoked by this worker, or already in the revocation set, is not sent again. Rate-bounded: a
token bucket of `max_per_minute`, `burst`; a verdict beyond it is counted and only denies,
so a storm of verdicts cannot flood the feed every gateway reads.
"""

from __future__ import annotations

from collections.abc import Callable

from wardgate.config.detect import RevokeAction
from wardgate.detect.events import Event
from wardgate.detect.table import Bounded
from wardgate.detect.verdict import KEY_NET, Finding
from wardgate.revoke.events import MAX_VALUE_LEN, Revocation

_NO_EXP_HOLD_S = 86_400.0  # a token without exp (allowed by its provider): kept this long
_MAX_EXP_S = 366 * 86_400.0  # an exp further out (or none, inf) is not a token's own
_SUBJECT_AGAIN_S = 60.0    # a subject is revoked again (covering newer tokens) this often


class Revoker:
    """`decide` answers the Revocation to send, or None (and counts why)."""

    def __init__(self, cfg: RevokeAction, max_keys: int) -> None:
        self.cfg = cfg
        self.rate = cfg.max_per_minute / 60.0
        self.allowance = float(cfg.burst)
        self.at: float | None = None
        self.sent: Bounded[tuple[str, str], float] = Bounded(max_keys)
        self.revoked = self.limited = self.repeated = self.nothing = 0

    def target(self, f: Finding, ev: Event, now: float) -> Revocation | None:
        """The revocation a finding asks for (wall-clock `now`), before dedup and rate."""
        if f.key_type == KEY_NET:
            return None
        if self.cfg.subject and ev.sub or not ev.jti and ev.sub:
            assert ev.sub is not None
            if len(ev.sub) > MAX_VALUE_LEN:
                return None
            before = float(int(now) + 1)  # iat has second resolution (issuer/revocations.py)
            return Revocation("sub", ev.sub, until=before + self.cfg.subject_hold_s,
                              before=before)
        if not ev.jti or len(ev.jti) > MAX_VALUE_LEN:
            return None
        until = ev.exp if now < ev.exp < now + _MAX_EXP_S else now + _NO_EXP_HOLD_S
        return Revocation("jti", ev.jti, until=float(int(until) + 1))

    def decide(self, f: Finding, ev: Event, now: float,
               held: Callable[[Revocation], bool] | None = None) -> Revocation | None:
        """`held(rev)`: whether the worker's revocation set already covers it."""
        rev = self.target(f, ev, now)
        if rev is None:
            self.nothing += 1
            return None
        k = (rev.kind, rev.value)
        last = self.sent.get(k)
        # a token once; a subject again only after a while (a token issued since is new)
        if last is not None and (rev.kind == "jti" or now - last < _SUBJECT_AGAIN_S) \
                or held is not None and held(rev):
            self.repeated += 1
            return None
        if self.at is not None:
            self.allowance = min(float(self.cfg.burst),
                                 self.allowance + (now - self.at) * self.rate)
        self.at = now
        if self.allowance < 1.0:
            self.limited += 1
            return None
        self.allowance -= 1.0
        self.sent.put(k, now)
        self.revoked += 1
        return rev
