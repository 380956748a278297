"""Audit events: login success/failure, refresh, reuse detection, revocation, keys, clients."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wardgate.issuer.schema import audit_events

# Built once; the values travel as parameters. Inline: nothing reads the new row's id back
# (PostgreSQL would otherwise add RETURNING).
INSERT = insert(audit_events).inline()
COLUMNS = ("at", "event", "username", "client_id", "address", "detail")  # of an `event_row`


def event_row(now: int, event: str, *, username: str | None = None,
              client_id: str | None = None, address: str | None = None,
              **detail: Any) -> dict[str, Any]:
    """The row `record` inserts (for callers that execute `INSERT` themselves)."""
    # Never pass secrets here: tokens, passwords and codes stay out of the log by construction.
    return {"at": now, "event": event, "username": username, "client_id": client_id,
            "address": address, "detail": json.dumps(detail, sort_keys=True, default=str)}


async def record(conn: AsyncConnection, now: int, event: str, *, username: str | None = None,
                 client_id: str | None = None, address: str | None = None,
                 **detail: Any) -> None:
    await conn.execute(INSERT, event_row(now, event, username=username, client_id=client_id,
                                          address=address, **detail))


async def recent(conn: AsyncConnection, event: str | None = None,
                 limit: int = 100) -> list[dict[str, Any]]:
    q = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
    if event is not None:
        q = q.where(audit_events.c.event == event)
    rows = (await conn.execute(q)).mappings().all()
    return [dict(r) | {"detail": json.loads(r["detail"])} for r in rows]
