"""`GET /revocations?since=SEQ`: the revocation feed for gateways that poll (no Redis).

Protected by the feed token (`revocations.token_env` / `token_file`), compared in constant
time: the events name subjects and clients. Without a configured token the endpoint does not
exist (404). Answers `{"epoch", "cursor", "events": [...], "more"}`: `cursor` is the highest
seq the caller now holds, `more` says another page follows at once, `epoch` names the
database (a gateway seeing a new one starts again from 0).
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from wardgate.issuer import revocations
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
