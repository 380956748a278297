"""The detector: every signal over one event stream, allow lists, one verdict per signal and
key per cooldown, and the flags the route steps enforce (no I/O; time comes with the events).
"""

from __future__ import annotations

from collections.abc import Mapping

from wardgate.config.detect import DetectionConfig
from wardgate.detect.allow import AllowedNetworks
from wardgate.detect.anomaly import AnomalyModel
from wardgate.detect.error_rate import ErrorRate
from wardgate.detect.events import Event
from wardgate.detect.flags import Flags
from wardgate.detect.signals import Enumeration, RateAnomaly, RefusedStorm, TokenReplay
from wardgate.detect.table import Bounded
from wardgate.detect.verdict import Finding, Verdict

Signal = TokenReplay | RateAnomaly | Enumeration | RefusedStorm | ErrorRate | AnomalyModel
#: every kind a verdict can have (wardgate_detections_total's kind label)
KINDS = ("token_replay", "rate", "enumeration", "refused_tokens", "key_probing", "error_rate",
         "anomaly")


class Detector:
    def __init__(self, cfg: DetectionConfig, route_actions: Mapping[str, str] | None = None) -> None:
        """`route_actions`: route name -> its action, where a route overrides the top level."""
        self.cfg = cfg
        self.actions = dict(route_actions or {})
        cap = cfg.max_keys
        self.signals: list[Signal] = []
        if cfg.replay.enabled:
            self.signals.append(TokenReplay(cfg.replay, cap))
        if cfg.rate.enabled:
            self.signals.append(RateAnomaly(cfg.rate, cap))
        if cfg.enumeration.enabled:
            self.signals.append(Enumeration(cfg.enumeration, cap))
        if cfg.refused.enabled:
            self.signals.append(RefusedStorm(cfg.refused, cap))
        if cfg.errors.enabled:
            self.signals.append(ErrorRate(cfg.errors, cap))
        self.model: AnomalyModel | None = None
        if cfg.model.enabled:
            self.model = AnomalyModel(cfg.model, cap)
            self.signals.append(self.model)
        self.flags = Flags(cap)
        self._last: Bounded[tuple[str, str, str], float] = Bounded(cap)
        self._allow_nets = AllowedNetworks(cfg.allow_networks)
        self._allow_subjects = frozenset(cfg.allow_subjects)
        self._allow_clients = frozenset(cfg.allow_clients)
        self._any_allowed = bool(self._allow_subjects or self._allow_clients)
        self.events = 0

    def allowed_network(self, ip: str) -> bool:
        return ip in self._allow_nets

    def exempt(self, ev: Event, network: bool = False) -> bool:
        """On an allow list: its subject or client (and, with `network`, its address)."""
        if ev.sub is not None and ev.sub in self._allow_subjects \
                or ev.client_id is not None and ev.client_id in self._allow_clients:
            return True
        return network and ev.client in self._allow_nets

    def observe(self, ev: Event, n: int = 1) -> list[Verdict]:
        """Feed one event (`n`: that many identical requests in a row); the verdicts it
        produced (usually none)."""
        self.events += 1
        if self._any_allowed and self.exempt(ev):
            return []
        skip_net = ev.client in self._allow_nets
        out: list[Verdict] = []
        for sig in self.signals:
            if skip_net and sig.network_based:
                continue
            found = sig.observe(ev) if n == 1 else sig.observe(ev, n)
            if found is not None:
                if self.model is not None and sig is not self.model:
                    found = self.model.annotate(found, ev)  # the model's view of it too
                v = self.conclude(found, ev)
                if v is not None:
                    out.append(v)
        return out

    def conclude(self, f: Finding, ev: Event) -> Verdict | None:
        """Flag what the finding is about (unless dry-run); the verdict, unless the same
        signal already spoke about the same key within the cooldown."""
        cfg = self.cfg
        action = self.actions.get(ev.route, cfg.action)
        if not cfg.dry_run:
            # every finding holds (or extends) the flag; each route decides what a flag means
            self.flags.set(f.key_type, f.key, ev.time + cfg.deny_s, f)
        k = (f.kind, f.key_type, f.key)
        last = self._last.get(k)
        if last is not None and ev.time - last < cfg.cooldown_s:
            return None
        self._last.put(k, ev.time)
        return Verdict(f, action, cfg.dry_run, ev.time, ev.route, ev.client, ev.sub_hash, ev.jti)

    def sweep(self, now: float) -> int:
        return self.flags.sweep(now)

    def sizes(self) -> dict[str, int]:
        """Entries held per table (bounded by max_keys each)."""
        out = {"flags": len(self.flags), "cooldowns": len(self._last)}
        for sig in self.signals:
            out[sig.kind] = len(sig.table)
        return out
