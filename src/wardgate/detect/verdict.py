"""What the detector concludes: a finding of one signal, and the verdict built from it.

A finding names its signal (`kind`), its score (>= 1 means the signal's threshold was passed;
the ratio says by how much), what it is about (a token, a subject or a network) and the
features that drove it; `explain()` turns those into one sentence for the log and the admin
API. Sans-I/O: plain frozen data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KEY_JTI, KEY_SUB, KEY_NET = "jti", "sub", "network"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str                    # token_replay | rate | enumeration | refused_tokens | key_probing
    #                              | error_rate | anomaly
    score: float
    key_type: str                # KEY_JTI | KEY_SUB | KEY_NET
    key: str
    features: dict[str, Any]
    reason: str                  # what fired, in words

    def explain(self) -> str:
        return f"{self.kind} (score {self.score:.2f}): {self.reason}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A finding with what the gateway does about it and the request that triggered it."""

    finding: Finding
    action: str                  # log | header | step_up | deny | revoke
    dry_run: bool
    time: float                  # the detector's clock when it concluded
    route: str
    client: str
    sub_hash: str | None
    jti: str | None

    @property
    def kind(self) -> str:
        return self.finding.kind

    @property
    def score(self) -> float:
        return self.finding.score

    def record(self, wall_time: float) -> dict[str, Any]:
        """The event as the log line, /admin/detections and the dashboard show it.
        `sub` is the access log's keyed hash of the subject, never the subject itself."""
        f = self.finding
        return {"time": round(wall_time, 3), "kind": f.kind, "score": round(f.score, 2),
                "action": self.action, "dry_run": self.dry_run, "route": self.route,
                "sub": self.sub_hash, "jti": self.jti, "client": self.client,
                "key": f"{f.key_type}:{self.sub_hash if f.key_type == KEY_SUB else f.key}",
                "features": f.features, "reason": f.explain()}
