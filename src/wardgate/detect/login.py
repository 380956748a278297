"""Login abuse at the issuer: credential stuffing and password spraying (no I/O; the clock
comes with each attempt, every table is size-capped).

    Attempt          one checked password (a login, the hosted login form): who, from where,
                     whether it was right
    NetworkFailures  one network: distinct usernames failing within `stuffing.window_s`
                     (`credential_stuffing`); `password_spraying` when few distinct passwords
                     made those failures
    UserNetworks     one username failing from many networks (`password_spraying`)
    LoginDetector    both signals, the allow list, cooldowns and the network flags the issuer
                     enforces (wardgate.issuer.detection is its adapter)

Usernames arrive as keyed fingerprints and passwords (failed ones only) as keyed, truncated
hashes made by the adapter; nothing here can turn either back into text. docs/security.md
(#login-abuse-at-the-issuer) explains each feature and its threshold.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

from wardgate.config.common import parse_networks
from wardgate.config.logindetect import IssuerDetection, SprayingSignal, StuffingSignal
from wardgate.detect.flags import Flag, Flags
from wardgate.detect.table import Bounded
from wardgate.detect.verdict import KEY_NET, Finding, Verdict

#: a verdict about one username (its fingerprint) / one refresh-token family
KEY_USER, KEY_FAMILY = "user", "family"
#: every kind the issuer reports (the gateway declares their metric series)
LOGIN_KINDS = ("credential_stuffing", "password_spraying", "refresh_reuse")
_CAP = 256        # usernames / password tags / addresses remembered per network and window
_MAX_NETS = 64    # networks remembered per username and window


class Attempt(NamedTuple):
    time: float
    address: str
    network: str            # its /24 (IPv4) or /48 (IPv6) prefix
    user: str               # the username's keyed fingerprint, never the username
    ok: bool
    password: bytes = b""   # failures only: a keyed hash of the password tried (memory only)
    route: str = "/login"


class _Net:
    __slots__ = ("start", "attempts", "failures", "tagged", "users", "failing", "tags",
                 "addresses")

    def __init__(self, start: float) -> None:
        self.start = start
        self.attempts = 0
        self.failures = 0
        self.tagged = 0
        self.users: set[str] = set()     # every username tried from the network
        self.failing: set[str] = set()   # those that failed and have not succeeded since
        self.tags: set[bytes] = set()
        self.addresses: set[str] = set()


class NetworkFailures:
    """Usernames failing from one network within `window_s`, counting only those that did not
    then succeed (a person who mistypes and then signs in is no evidence). Fires once
    `min_usernames` such usernames are counted and they are at least `min_failure_ratio` of
    the distinct usernames tried from the network: an office NAT where many people sign in
    stays far below that share, and an attacker cannot dilute it by signing in to an account
    of their own again and again (one username, counted once). Named `password_spraying`
    when distinct passwords / failures <= `password_ratio` (a few passwords tried against
    many accounts), else `credential_stuffing` (a leaked list: one password per account)."""

    kind = "credential_stuffing"

    def __init__(self, cfg: StuffingSignal, spraying: SprayingSignal, max_keys: int) -> None:
        self.cfg = cfg
        self.spraying = spraying
        self.table: Bounded[str, _Net] = Bounded(max_keys)

    def observe(self, a: Attempt) -> Finding | None:
        t = a.time
        st = self.table.get(a.network)
        if st is None or t >= st.start + self.cfg.window_s:
            st = _Net(t)
            self.table.put(a.network, st)
        st.attempts += 1
        if len(st.users) < _CAP:
            st.users.add(a.user)
        if a.ok:
            st.failing.discard(a.user)
            return None
        st.failures += 1
        if len(st.failing) < _CAP and a.user in st.users:
            st.failing.add(a.user)
        if len(st.addresses) < _CAP:
            st.addresses.add(a.address)
        if a.password:
            st.tagged += 1
            if len(st.tags) < _CAP:
                st.tags.add(a.password)
        users = len(st.failing)
        cfg = self.cfg
        if users < cfg.min_usernames:
            return None
        ratio = users / len(st.users)
        if ratio < cfg.min_failure_ratio:
            return None
        spray = st.tagged >= cfg.min_usernames and \
            len(st.tags) <= self.spraying.password_ratio * st.tagged
        kind = "password_spraying" if spray else self.kind
        feats = {"usernames": users, "usernames_tried": len(st.users),
                 "failures": st.failures, "attempts": st.attempts,
                 "failing_share": round(ratio, 3), "addresses": len(st.addresses),
                 "window_s": cfg.window_s}
        if st.tagged:
            feats["distinct_passwords"] = len(st.tags)  # a count, never a value
        how = (f"{len(st.tags)} distinct passwords over {st.tagged} failures" if spray
               else "one password per username")
        return Finding(
            kind, users / cfg.min_usernames, KEY_NET, a.network, feats,
            f"{users} of {len(st.users)} usernames tried from {a.network} failed without a "
            f"later success within {cfg.window_s:g} s ({st.failures} of {st.attempts} "
            f"attempts failed; {how}; threshold {cfg.min_usernames} usernames, "
            f"{cfg.min_failure_ratio:g} of those tried)")


class _User:
    __slots__ = ("start", "failures", "nets")

    def __init__(self, start: float) -> None:
        self.start = start
        self.failures = 0
        self.nets: dict[str, float] = {}


class UserNetworks:
    """One username failing from `min_networks` distinct networks within `window_s`: a
    distributed guess at one account (each source stays under the per-address throttle). A
    person mistyping on a laptop and then a phone is two networks."""

    kind = "password_spraying"

    def __init__(self, cfg: SprayingSignal, max_keys: int) -> None:
        self.cfg = cfg
        self.table: Bounded[str, _User] = Bounded(max_keys)

    def observe(self, a: Attempt) -> Finding | None:
        if a.ok:
            return None
        t = a.time
        st = self.table.get(a.user)
        if st is None or t >= st.start + self.cfg.window_s:
            st = _User(t)
            self.table.put(a.user, st)
        st.failures += 1
        nets = st.nets
        if a.network not in nets and len(nets) >= _MAX_NETS:
            del nets[min(nets, key=nets.__getitem__)]
        nets[a.network] = t
        n = len(nets)
        if n < self.cfg.min_networks:
            return None
        return Finding(
            self.kind, n / self.cfg.min_networks, KEY_USER, a.user,
            {"networks": n, "failures": st.failures, "window_s": self.cfg.window_s,
             "networks_seen": sorted(nets, key=nets.__getitem__)[-16:]},
            f"one username failing from {n} networks within {self.cfg.window_s:g} s "
            f"({st.failures} failures; threshold {self.cfg.min_networks} networks)")


class LoginDetector:
    """Both signals over the issuer's password checks. Only verdicts about a network are
    enforced (`flagged`): one about a username never is, or anyone could lock a user out by
    failing on their name from a few networks (the per-username throttle slows it instead)."""

    def __init__(self, cfg: IssuerDetection) -> None:
        self.cfg = cfg
        self.signals: list[NetworkFailures | UserNetworks] = []
        if cfg.stuffing.enabled:
            self.signals.append(NetworkFailures(cfg.stuffing, cfg.spraying, cfg.max_keys))
        if cfg.spraying.enabled:
            self.signals.append(UserNetworks(cfg.spraying, cfg.max_keys))
        self.flags = Flags(cfg.max_keys)
        self._last: Bounded[tuple[str, str, str], float] = Bounded(cfg.max_keys)
        self._allow = parse_networks(cfg.allow_networks)
        self._allowed: dict[str, bool] = {}

    def allowed(self, address: str) -> bool:
        if not self._allow:
            return False
        hit = self._allowed.get(address)
        if hit is None:
            try:
                ip = ipaddress.ip_address(address)
                hit = any(ip in n for n in self._allow)
            except ValueError:
                hit = False
            if len(self._allowed) >= 65_536:
                self._allowed.clear()
            self._allowed[address] = hit
        return hit

    def flagged(self, network: str, now: float) -> Flag | None:
        """The flag held on `network` (None when free, allowed, expired or in dry-run)."""
        f = self.flags.net.get(network) if self.flags.net else None
        if f is None or f.until <= now:
            return None
        return f

    def observe(self, a: Attempt) -> list[Verdict]:
        allowed = self.allowed(a.address)
        out: list[Verdict] = []
        for sig in self.signals:
            if allowed and isinstance(sig, NetworkFailures):
                continue  # a known NAT: many users behind it, never one network's verdict
            found = sig.observe(a)
            if found is not None:
                v = self.conclude(found, a.time, a.route, a.address)
                if v is not None:
                    out.append(v)
        return out

    def conclude(self, f: Finding, now: float, route: str, client: str,
                 action: str | None = None) -> Verdict | None:
        """Flag a network finding (unless dry-run); the verdict unless the same signal spoke
        about the same key within the cooldown."""
        cfg = self.cfg
        enforce = f.key_type == KEY_NET and cfg.action != "log"
        if f.key_type == KEY_NET and not cfg.dry_run:
            self.flags.set(KEY_NET, f.key, now + cfg.deny_s, f)
        k = (f.kind, f.key_type, f.key)
        last = self._last.get(k)
        if last is not None and now - last < cfg.cooldown_s:
            return None
        self._last.put(k, now)
        if action is None:
            action = cfg.action if enforce else "log"
        return Verdict(f, action, cfg.dry_run, now, route, client, None, None)

    def sweep(self, now: float) -> int:
        return self.flags.sweep(now)

    def sizes(self) -> dict[str, int]:
        out = {"flags": len(self.flags), "cooldowns": len(self._last)}
        for sig in self.signals:
            out[type(sig).__name__] = len(sig.table)
        return out
