"""`GET /revocations?since=SEQ`: the revocation feed for gateways that poll (no Redis), and
`POST /revocations`: a gateway's detection revoking a token or subject (action revoke, no
Redis; with Redis the gateway appends to the feed's stream itself).

Protected by the feed token (`revocations.token_env` / `token_file`), compared in constant
time: the events name subjects and clients. Without a configured token the endpoint does not
exist (404). Answers `{"epoch", "cursor", "events": [...], "more"}`: `cursor` is the highest
seq the caller now holds, `more` says another page follows at once, `epoch` names the
database (a gateway seeing a new one starts again from 0).
"""

from __future__ import annotations

import hmac
import json

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from wardgate import logs
from wardgate.issuer import audit, revocations
from wardgate.issuer.admin import max_token_ttl
from wardgate.issuer.deps import NO_STORE, bearer, issuer_of
from wardgate.issuer.errors import InvalidRequest, InvalidToken, NotFound

router = APIRouter(tags=["revocations"])
_QUERY = {"parameters": [{"name": "since", "in": "query", "required": False,
                          "schema": {"type": "integer", "minimum": 0}}]}


@router.get("/revocations", openapi_extra=_QUERY)
async def feed(request: Request) -> JSONResponse:
    iss = issuer_of(request)
    want = iss.cfg.revocations.token()
    if want is None:
        raise NotFound("no revocation feed is configured")
    got = bearer(request)
    if got is None or not hmac.compare_digest(got.encode(), want.encode()):
        raise InvalidToken("the revocation feed needs its token")
    raw = request.query_params.get("since", "0")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise InvalidRequest("since must be a non-negative integer")
    since = int(raw)
    async with iss.db.begin() as conn:
        events, newest = await revocations.since(conn, since, now=iss.now(),
                                                 grace_s=iss.cfg.revocations.grace_s)
    body = {"epoch": iss.revocation_epoch, "cursor": events[-1].seq if events else max(newest, since),
            "events": [e.to_wire() for e in events],
            "more": len(events) >= revocations.PAGE}
    return JSONResponse(body, headers=NO_STORE)


def _authorized(request: Request, want: str | None) -> None:
    if want is None:
        raise NotFound("no revocation reports are configured")
    got = bearer(request)
    if got is None or not hmac.compare_digest(got.encode(), want.encode()):
        raise InvalidToken("revocation reports need their token")


@router.post("/revocations")
async def report(request: Request) -> JSONResponse:
    """`{"kind": "jti", "value": JTI, "until": EXP}` or `{"kind": "sub", "value": SUB}`: one
    event, stored like any other (reason `detection`), audited with a fingerprint."""
    iss = issuer_of(request)
    rep = iss.cfg.revocations.report
    _authorized(request, rep.token() if rep is not None else None)
    raw = await request.body()
    if len(raw) > 4096:
        raise InvalidRequest("the report is too large")
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidRequest("the body must be JSON") from None
    if not isinstance(doc, dict) or doc.get("kind") not in ("jti", "sub") \
            or not isinstance(doc.get("value"), str) or not doc["value"] \
            or len(doc["value"]) > 256:
        raise InvalidRequest("kind must be jti or sub, value a string of 1 to 256 characters")
    now = iss.now()
    ttl = max_token_ttl(iss.cfg)
    kind, value = doc["kind"], doc["value"]
    async with iss.db.begin() as conn:
        if kind == "jti":
            until = doc.get("until")
            if isinstance(until, bool) or not isinstance(until, int):
                until = now + ttl
            # never longer than any token this issuer signs lives: a report cannot pin a value
            until = min(until, now + ttl + 1)
            if until <= now:
                raise InvalidRequest("that token has expired already")
            ev = await revocations.emit(conn, "jti", value, now=now, until=until,
                                        reason="detection")
        else:
            ev = await revocations.emit_subject(conn, value, now=now, max_ttl_s=ttl,
                                                reason="detection")
        await audit.record(conn, now, "revocation", kind=ev.kind, seq=ev.seq,
                           reason="detection", fingerprint=logs.fingerprint(value))
    return JSONResponse({"seq": ev.seq, "kind": ev.kind}, headers=NO_STORE)
