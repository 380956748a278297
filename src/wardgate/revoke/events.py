"""One revocation, as the issuer emits it and every transport carries it.

Kinds:
    jti     one token; kept until `until`, the token's own `exp`
    sub     every token of subject `value` issued before `before` (logout everywhere,
            password change, account disabled); kept until `until` = `before` plus the
            issuer's longest token lifetime, after which no token it covers is alive
    client  every token of `client_id` `value` issued before `before`; likewise

`seq` is the issuer's event number (its table's primary key): the cursor of a feed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

KINDS = ("jti", "sub", "client")
MAX_VALUE_LEN = 256


class BadEvent(ValueError):
    """An event that does not validate: dropped by the reader, counted, never applied."""


def _time(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
            or not 0 <= v < 2**53:
        raise BadEvent(f"{name} must be a finite non-negative number")
    return float(v)


@dataclass(frozen=True, slots=True)
class Revocation:
    kind: str
    value: str
    until: float
    before: float = 0.0
    seq: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BadEvent(f"unknown kind {self.kind!r}")
        if not isinstance(self.value, str) or not self.value or len(self.value) > MAX_VALUE_LEN:
            raise BadEvent("value must be a non-empty string of at most 256 characters")
        _time(self.until, "until")
        _time(self.before, "before")
        if self.kind != "jti" and self.before <= 0:
            raise BadEvent(f"a {self.kind} revocation needs `before`")
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 0:
            raise BadEvent("seq must be a non-negative integer")

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "kind": self.kind, "value": self.value,
                               "until": self.until}
        if self.kind != "jti":
            out["before"] = self.before
        return out

    @classmethod
    def from_wire(cls, doc: Any) -> Revocation:
        if not isinstance(doc, dict):
            raise BadEvent("an event is a JSON object")
        try:
            return cls(kind=doc["kind"], value=doc["value"], until=_time(doc["until"], "until"),
                       before=_time(doc.get("before", 0), "before"), seq=doc.get("seq", 0))
        except KeyError as exc:
            raise BadEvent(f"missing {exc.args[0]}") from None
        except TypeError as exc:
            raise BadEvent(str(exc)) from None
