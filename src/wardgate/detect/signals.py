"""The signals: each one a small class over bounded tables, fed one Event at a time, answering
a Finding when its threshold is passed (no I/O; the event carries the time).

    TokenReplay    one token from several networks / user agents, or alternating between them
    RateAnomaly    a subject's requests per bucket against its own learned baseline
    Enumeration    sequential or high-cardinality path parameters from one subject on a route
    RefusedStorm   refused tokens from one network (`key_probing` when they probe keys/issuers)

`observe(ev, n)`: `n` identical requests in a row (the tick folds a run of one client's
repeats into one call); only the counting signals use it.

Every threshold is in `DetectionConfig` (docs/security.md#detection explains each feature).
"""

from __future__ import annotations

from wardgate.config.detect import EnumerationSignal, RateSignal, RefusedSignal, ReplaySignal
from wardgate.detect.baseline import learn_clipped
from wardgate.detect.events import PROBING_OUTCOMES, REFUSED_OUTCOMES, Event
from wardgate.detect.table import Bounded
from wardgate.detect.verdict import KEY_JTI, KEY_NET, KEY_SUB, Finding

_MAX_SWITCHES = 64   # switches remembered per token (the window prunes them first)
_MAX_NETS = 16       # networks remembered per token


class _Token:
    __slots__ = ("net", "ua", "switches", "nets", "uas")

    def __init__(self, net: str, ua: str, t: float) -> None:
        self.net = net
        self.ua = ua
        self.switches: list[tuple[float, float]] = []   # (time, weight)
        self.nets: dict[str, float] = {net: t}           # network -> last seen
        self.uas: set[str] = {ua}


class TokenReplay:
    """Replay of a stolen token, or one token shared by several clients.

    A change of network between two consecutive requests of one token scores 1, a change of
    user agent 2 (a different program is stronger evidence than a phone changing cells);
    `switch_score` within `window_s` fires, as do `max_networks` distinct networks. A mobile
    user moving once scores 1 and is never flagged; a thief with another client is flagged on
    the first request, one copying the user agent when the owner and the thief have
    alternated three times."""

    kind = "token_replay"
    network_based = True

    def __init__(self, cfg: ReplaySignal, max_keys: int) -> None:
        self.cfg = cfg
        self.table: Bounded[str, _Token] = Bounded(max_keys)

    def observe(self, ev: Event, n: int = 1) -> Finding | None:
        if ev.outcome != "ok":
            return None
        if ev.jti:
            key_type, key = KEY_JTI, ev.jti
        elif ev.sub:
            key_type, key = KEY_SUB, ev.sub
        else:
            return None
        t = ev.time
        st = self.table.data.get(key)
        if st is None:
            self.table.put(key, _Token(ev.network, ev.ua, t))
            return None
        net = ev.network
        if net == st.net and ev.ua == st.ua:
            st.nets[net] = t
            return None  # nothing changed: no new evidence (the common case, kept short)
        weight = (1.0 if net != st.net else 0.0) + (2.0 if ev.ua != st.ua else 0.0)
        st.net, st.ua = net, ev.ua
        nets = st.nets
        if net not in nets and len(nets) >= _MAX_NETS:
            del nets[min(nets, key=nets.__getitem__)]
        nets[net] = t
        if len(st.uas) < _MAX_NETS:
            st.uas.add(ev.ua)
        horizon = t - self.cfg.window_s
        sw = [s for s in st.switches if s[0] >= horizon]
        sw.append((t, weight))
        st.switches = sw[-_MAX_SWITCHES:]
        total = sum(w for _, w in st.switches)
        live = sorted(n for n, seen in nets.items() if seen >= horizon)
        score = max(total / self.cfg.switch_score, len(live) / self.cfg.max_networks)
        if score < 1.0:
            return None
        ua_changes = sum(1 for _, w in st.switches if w >= 2.0)
        return Finding(
            self.kind, score, key_type, key,
            {"switches": len(st.switches), "switch_score": total,
             "ua_switches": ua_changes, "networks": len(live), "user_agents": len(st.uas),
             "window_s": self.cfg.window_s, "networks_seen": live[:_MAX_NETS]},
            f"one token, {len(st.switches)} switches of network or user agent within "
            f"{self.cfg.window_s:g} s ({ua_changes} of user agent; score {total:g} against "
            f"{self.cfg.switch_score:g}), {len(live)} networks ({', '.join(live[:4])})")


class _Rate:
    __slots__ = ("start", "count", "mean", "dev", "buckets", "thr")

    def __init__(self, start: float, mean: float, dev: float) -> None:
        self.start = start
        self.count = 0
        self.mean = mean
        self.dev = dev
        self.buckets = 0
        self.thr = 0.0  # the threshold of the bucket filling now (computed when it opens)


class RateAnomaly:
    """Requests per `bucket_s` of one subject against its own baseline: an EWMA of its counts
    and one of their absolute deviations (a robust, MAD-like spread). A bucket is learned
    clipped to mean + 3 deviations, so a burst does not teach the baseline that bursts are
    normal. A new subject starts from the population's baseline (the cold-start prior).
    Fires, while the bucket is still filling, once the count passes
    max(min_requests, mean + k * deviation)."""

    kind = "rate"
    network_based = False
    _IDLE_BUCKETS = 12  # empty buckets learned at most after a pause

    def __init__(self, cfg: RateSignal, max_keys: int) -> None:
        self.cfg = cfg
        self.table: Bounded[str, _Rate] = Bounded(max_keys)
        self.pop_mean = 1.0
        self.pop_dev = 1.0

    def _learn(self, st: _Rate, count: float) -> None:
        st.mean, st.dev, _ = learn_clipped(st.mean, st.dev, count, self.cfg.alpha, 1.0)
        st.buckets += 1

    def _close(self, st: _Rate, t: float) -> None:
        bucket = self.cfg.bucket_s
        elapsed = int((t - st.start) // bucket)
        c = st.count
        self._learn(st, c)
        if c:
            self.pop_mean = 0.99 * self.pop_mean + 0.01 * c
            self.pop_dev = 0.99 * self.pop_dev + 0.01 * abs(c - self.pop_mean)
        for _ in range(min(elapsed - 1, self._IDLE_BUCKETS)):
            self._learn(st, 0.0)
        st.start += elapsed * bucket
        st.count = 0
        st.thr = self.threshold(st)

    def threshold(self, st: _Rate) -> float:
        return max(float(self.cfg.min_requests), st.mean + self.cfg.k * max(st.dev, 1.0))

    def observe(self, ev: Event, n: int = 1) -> Finding | None:
        subject = ev.sub or ev.client_id
        if subject is None:
            return None
        t = ev.time
        st = self.table.data.get(subject)
        if st is None:
            st = _Rate(t, self.pop_mean, self.pop_dev)
            st.thr = self.threshold(st)
            self.table.put(subject, st)
        elif t >= st.start + self.cfg.bucket_s:
            self._close(st, t)
        st.count += n
        thr = st.thr
        if st.count < thr:
            return None
        return Finding(
            self.kind, st.count / thr, KEY_SUB, subject,
            {"requests": st.count, "bucket_s": self.cfg.bucket_s,
             "baseline_mean": round(st.mean, 2), "baseline_dev": round(st.dev, 2),
             "threshold": round(thr, 1), "learned_buckets": st.buckets},
            f"{st.count} requests in {self.cfg.bucket_s:g} s against a learned baseline of "
            f"{st.mean:.1f} +- {st.dev:.1f} (threshold {thr:.0f})")


class _Enum:
    __slots__ = ("start", "values", "last", "run", "value")

    def __init__(self, start: float) -> None:
        self.start = start
        self.values: set[str] = set()
        self.last: int | None = None
        self.run = 0
        self.value: tuple[str, ...] | str | None = None  # the last request's value, as it came


class Enumeration:
    """Scraping by enumeration: within `window_s`, one subject's distinct `{param}` values (or
    distinct paths, on a route without parameters) on one route, and its longest run of
    consecutive numbers in the last parameter (n, n+1, n+2, ... or downwards)."""

    kind = "enumeration"
    network_based = False

    def __init__(self, cfg: EnumerationSignal, max_keys: int) -> None:
        self.cfg = cfg
        self.table: Bounded[tuple[str, str], _Enum] = Bounded(max_keys)

    def observe(self, ev: Event, n: int = 1) -> Finding | None:
        subject = ev.sub or ev.client_id
        if subject is None:
            return None
        t = ev.time
        cfg = self.cfg
        k = (subject, ev.route)
        st = self.table.data.get(k)
        if st is None or t >= st.start + cfg.window_s:
            st = _Enum(t)
            self.table.put(k, st)
        else:
            same = ev.params or ev.path
            if same == st.value:
                return None  # the same resource again: nothing new (the common case)
        st.value = ev.params or ev.path
        value = "/".join(ev.params) if ev.params else ev.path
        if len(st.values) < cfg.max_distinct:
            st.values.add(value)
        last = ev.params[-1] if ev.params else None
        if last is not None and last.isdigit() and len(last) < 19:
            n = int(last)
            if st.last is not None and abs(n - st.last) == 1:
                st.run += 1
            elif st.last != n:
                st.run = 1
            st.last = n
        distinct = len(st.values)
        score = max(distinct / cfg.max_distinct, st.run / cfg.sequential_run)
        if score < 1.0:
            return None
        return Finding(
            self.kind, score, KEY_SUB, subject,
            {"distinct_values": distinct, "sequential_run": st.run, "route": ev.route,
             "window_s": cfg.window_s},
            f"{distinct} distinct values and a run of {st.run} consecutive numbers on route "
            f"{ev.route} within {cfg.window_s:g} s (thresholds {cfg.max_distinct} and "
            f"{cfg.sequential_run})")


class _Refused:
    __slots__ = ("start", "count", "outcomes")

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0
        self.outcomes: dict[str, int] = {}


class RefusedStorm:
    """Refused tokens from one network within `window_s`. Named `key_probing` when at least
    half are the answers a probe of the key set or issuer list gets (unknown kid, unknown
    issuer, an algorithm or key not allowed, a bad signature), else `refused_tokens`."""

    kind = "refused_tokens"
    network_based = True

    def __init__(self, cfg: RefusedSignal, max_keys: int) -> None:
        self.cfg = cfg
        self.table: Bounded[str, _Refused] = Bounded(max_keys)

    def observe(self, ev: Event, n: int = 1) -> Finding | None:
        outcome = ev.outcome
        if outcome not in REFUSED_OUTCOMES:
            return None
        t = ev.time
        st = self.table.get(ev.network)
        if st is None or t >= st.start + self.cfg.window_s:
            st = _Refused(t)
            self.table.put(ev.network, st)
        st.count += n
        st.outcomes[outcome] = st.outcomes.get(outcome, 0) + n
        if st.count < self.cfg.min_refusals:
            return None
        probing = sum(n for o, n in st.outcomes.items() if o in PROBING_OUTCOMES)
        kind = "key_probing" if 2 * probing >= st.count else self.kind
        top = dict(sorted(st.outcomes.items(), key=lambda x: -x[1])[:5])
        return Finding(
            kind, st.count / self.cfg.min_refusals, KEY_NET, ev.network,
            {"refused": st.count, "probing": probing, "outcomes": top,
             "window_s": self.cfg.window_s},
            f"{st.count} refused tokens from {ev.network} within {self.cfg.window_s:g} s "
            f"({probing} probing keys or issuers; threshold {self.cfg.min_refusals})")
