"""The polling feed never moves a gateway's cursor past an event it did not hand over.

`wardgate revoke` writes into the issuer's SQLite file from another process, at any moment,
also while a poll is being answered. Here that commit lands between the statements of one
`GET /revocations` (deterministically: from a hook on the issuer's own connection); the
gateway that follows the cursors must still get the event. Before the fix the answer was
`{"events": [], "cursor": <the new seq>}` and that gateway accepted the revoked token until
it expired (one worker of two kept answering 200 in about 1 run in 8 of the end-to-end test).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from tests.issuer.support import base_config
from tests.revoke.support import FEED_TOKEN
from wardgate.config.issuer import IssuerConfig
from wardgate.issuer.app import create_app

NOW_UNTIL = 4_000_000_000  # far ahead: the event covers a live token


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any, Path]]:
    token_file = tmp_path / "feed.token"
    token_file.write_text(FEED_TOKEN + "\n")
    cfg = IssuerConfig(**base_config(tmp_path, revocations={"token_file": str(token_file)}))
    app = create_app(cfg)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app, client=("127.0.0.1", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1",
                                     headers={"Authorization": f"Bearer {FEED_TOKEN}"}) as c:
            yield c, app.state.issuer.db.engine.sync_engine, tmp_path / "issuer.db"


def _revoke_from_another_process(path: Path, value: str) -> None:
    """What the CLI does: its own connection, its own committed transaction."""
    other = sqlite3.connect(path, timeout=5)
    try:
        with other:
            other.execute("INSERT INTO wg_revocation_events (kind, value, before, until, at, "
                          "reason) VALUES ('jti', ?, 0, ?, 0, 'admin')", (value, NOW_UNTIL))
    finally:
        other.close()


async def _poll(http: httpx.AsyncClient, since: int) -> dict[str, Any]:
    r = await http.get("/revocations", params={"since": since})
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


async def test_an_event_committed_during_a_poll_is_not_skipped(
        http: tuple[httpx.AsyncClient, Any, Path]) -> None:
    client, engine, path = http
    _revoke_from_another_process(path, "first")
    page = await _poll(client, 0)
    assert [e["value"] for e in page["events"]] == ["first"]
    cursor = page["cursor"]

    statements = 0

    def commit_after_first_statement(_conn: Any, _cur: Any, sql: str, *_rest: Any) -> None:
        nonlocal statements
        if not (sql.lstrip().upper().startswith("SELECT") and "wg_revocation_events" in sql):
            return  # the poll's reads only (not the issuer's housekeeping)
        statements += 1
        if statements == 1:
            _revoke_from_another_process(path, "late")

    event.listen(engine, "after_cursor_execute", commit_after_first_statement)
    try:
        page = await _poll(client, cursor)
    finally:
        event.remove(engine, "after_cursor_execute", commit_after_first_statement)
    assert statements >= 2  # the hook fired inside the poll, between two of its reads
    seen = [e["value"] for e in page["events"]]
    # the next polls, as a gateway makes them, from the cursor it was given
    cursor = page["cursor"]
    for _ in range(3):
        page = await _poll(client, cursor)
        seen += [e["value"] for e in page["events"]]
        cursor = page["cursor"]
    assert seen == ["late"]
    assert cursor == 2
