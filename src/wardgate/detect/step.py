"""A route's detection step, compiled once per route: enforce the flags the detector set.

It runs right after authentication (pipeline.py), and only while something is flagged
(flags.py arms and disarms it); a flagged token, subject or network gets this route's action:

    header   the request goes on with the risk header (`X-Wardgate-Risk: 1.50;kind=rate`)
    step_up  401, WWW-Authenticate: Bearer error="insufficient_user_authentication" (RFC 9470)
    deny     403 problem+json, code detection_denied
    revoke   the verdict revokes through the revocation feed (revoke_sink.py), so the token
             is refused by authentication (401 revoked) before this step; what cannot be
             revoked (a network) or was held back by the rate bound is denied as `deny`

Routes whose action is `log` (and every route in dry-run mode) get no step at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wardgate.detect.events import network_of
from wardgate.detect.flags import Flag, Flags
from wardgate.errors import DetectionDenied, StepUpRequired

if TYPE_CHECKING:
    from wardgate.gateway.request import Request

Step = Callable[["Request"], None]

_STEP_UP = "A fresh authentication is required for this request"  # RFC 9470 §3 description
_DENIED = "This request was refused by the gateway's fraud detection"


def _flag_of(flags: Flags, req: Request) -> Flag | None:
    jti_t, sub_t, net_t = flags.jti, flags.sub, flags.net
    f = None
    ident = req.identity
    if ident is not None:
        if jti_t and ident.jti is not None:
            f = jti_t.get(ident.jti)
        if f is None and sub_t:
            subject = ident.sub or ident.claims.get("client_id") or ident.claims.get("azp")
            if isinstance(subject, str):
                f = sub_t.get(subject)
    if f is None and net_t:
        f = net_t.get(network_of(req.client_ip))
    if f is None or f.until <= req.start:
        return None
    return f


def compile_step(flags: Flags, action: str, header: str, counter: list[Any]) -> Step | None:
    """The step for one route; None when its action enforces nothing (`log`).
    `counter`: [values array or None, slot], filled in once the worker maps its metrics."""
    if action == "log":
        return None
    jti_t, sub_t, net_t = flags.jti, flags.sub, flags.net
    line = b"\r\n" + header.encode() + b": "

    def count() -> None:
        values = counter[0]
        if values is not None:
            values[counter[1]] += 1

    if action == "header":
        def step(req: Request) -> None:
            if not (jti_t or sub_t or net_t):
                return
            f = _flag_of(flags, req)
            if f is not None:
                count()
                # after the header rewrite, which drops every x-wardgate-* field a client sent:
                # the field goes with the request's own upstream lines (proxy.Exchange), so the
                # connection's header memos never see it
                req.trace_line += line + f.header
        return step

    def refuse(req: Request) -> None:
        if not (jti_t or sub_t or net_t):
            return
        f = _flag_of(flags, req)
        if f is None:
            return
        count()
        if action == "step_up":
            req.auth_outcome = "step_up"
            raise StepUpRequired(_STEP_UP)
        req.auth_outcome = "detection_denied"
        raise DetectionDenied(_DENIED)
    return refuse
