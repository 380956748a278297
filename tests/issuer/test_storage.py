"""Storage against SQLite and a real PostgreSQL: same schema, same behaviour, no partial rows."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from tests.issuer.support import base_config
from wardgate.config.issuer import IssuerConfig
from wardgate.config.loader import load_file
from wardgate.issuer import (
    audit,
    clients,
    grants,
    keys,
    rawsql,
    refresh,
    revocations,
    sessions,
    users,
)
from wardgate.issuer.db import Database, open_database
from wardgate.issuer.errors import InvalidGrant
from wardgate.issuer.schema import auth_codes, refresh_tokens, signing_keys
from wardgate.issuer.schema import users as users_table
from wardgate.issuer.service import Issuer

NOW = 1_800_000_000


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sub' / 'issuer.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    d = await open_database(url)
    if not d.is_sqlite:
        # One database for the session: start every test from empty tables.
        async with d.begin() as conn:
            await conn.execute(text(
                "TRUNCATE wg_audit_events, wg_refresh_tokens, wg_auth_codes, wg_sessions, "
                "wg_user_roles, wg_roles, wg_users, wg_clients, wg_signing_keys, "
                "wg_revoked_jti, wg_used_assertions, wg_revocation_events, wg_issued_access "
                "RESTART IDENTITY CASCADE"))
    yield d
    await d.close()


async def test_first_start_creates_file_and_migration_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "issuer.db"
    d = await open_database(f"sqlite:///{path}")
    await d.migrate()  # second start: nothing to do, nothing breaks
    await d.close()
    assert path.is_file()


async def test_users_roles_and_scopes(db: Database) -> None:
    async with db.begin() as conn:
        await users.sync_roles(conn, {"reader": ["orders:read"], "admin": ["a", "b"]})
        uid = await users.add_user(conn, "alice", "hash", ["reader", "admin"], NOW)
    async with db.begin() as conn:
        u = await users.get_by_name(conn, "alice")
    assert u is not None and u.id == uid
    assert u.roles == ("admin", "reader") and u.scopes == ("a", "b", "orders:read")
    async with db.begin() as conn:
        with pytest.raises(users.UserExists):
            await users.add_user(conn, "alice", "hash", [], NOW)
    async with db.begin() as conn:
        await users.set_disabled(conn, "alice", True)
        assert (await users.get_by_id(conn, uid)).disabled  # type: ignore[union-attr]
        with pytest.raises(users.NoSuchUser):
            await users.set_password_hash(conn, "nobody", "x")


async def test_failed_transaction_leaves_no_partial_rows(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.begin() as conn:
            await users.add_user(conn, "carol", "hash", ["reader"], NOW)
            raise RuntimeError("crash after the first insert")
    async with db.begin() as conn:
        n = (await conn.execute(select(func.count()).select_from(users_table))).scalar_one()
        assert n == 0


async def test_clients_secret_hashed_and_rules(db: Database) -> None:
    async with db.begin() as conn:
        secret = await clients.add_client(
            conn, client_id="svc", name="svc", auth_method="client_secret_basic",
            grant_types=["client_credentials"], scopes=["x"], audiences=["api"],
            redirect_uris=[], jwks=None, now=NOW)
        assert secret and len(secret) >= 43
        c = await clients.get_client(conn, "svc")
        assert c is not None and c.secret_matches(secret) and not c.secret_matches("nope")
        assert secret not in json.dumps(c.__dict__)
        with pytest.raises(ValueError, match="public client"):
            await clients.add_client(conn, client_id="p", name="p", auth_method="none",
                                     grant_types=["client_credentials"], scopes=[],
                                     audiences=["api"], redirect_uris=[], jwks=None, now=NOW)
        for bad_id in ("123", "has space", "x" * 101, ""):
            with pytest.raises(ValueError, match="client id"):
                await clients.add_client(conn, client_id=bad_id, name="n", auth_method="none",
                                         grant_types=["refresh_token"], scopes=[],
                                         audiences=["api"], redirect_uris=[], jwks=None,
                                         now=NOW)
        with pytest.raises(ValueError, match="fragment"):
            await clients.add_client(conn, client_id="w", name="w", auth_method="none",
                                     grant_types=["authorization_code"], scopes=[],
                                     audiences=["api"], redirect_uris=["https://a/cb#x"],
                                     jwks=None, now=NOW)


async def _family(db: Database, **kw: int) -> str:
    async with db.begin() as conn:
        tok, _ = await refresh.issue(conn, user_id=None, client_id="c", sid=None, scope="[]",
                                     audience="api", now=NOW, idle_s=kw.get("idle", 100),
                                     absolute_s=kw.get("absolute", 1000))
    return tok


async def test_refresh_rotation_and_reuse_revokes_family(db: Database) -> None:
    t0 = await _family(db)
    async with db.begin() as conn:
        r1 = await refresh.rotate(conn, t0, "c", NOW + 1, 100)
    assert r1.outcome is refresh.Outcome.OK and r1.new_token
    async with db.begin() as conn:
        r2 = await refresh.rotate(conn, r1.new_token, "c", NOW + 2, 100)
    assert r2.outcome is refresh.Outcome.OK and r2.new_token
    async with db.begin() as conn:
        reuse = await refresh.rotate(conn, t0, "c", NOW + 3, 100)
    assert reuse.outcome is refresh.Outcome.REUSED
    async with db.begin() as conn:  # the newest member of the family is dead too
        after = await refresh.rotate(conn, r2.new_token, "c", NOW + 4, 100)
        rows = (await conn.execute(select(refresh_tokens.c.revoked))).scalars().all()
    assert after.outcome is refresh.Outcome.REVOKED
    assert len(rows) == 3 and all(rows)
    async with db.begin() as conn:
        assert (await refresh.rotate(conn, "x" * 43, "c", NOW, 100)).outcome \
            is refresh.Outcome.UNKNOWN


async def test_refresh_bound_to_client(db: Database) -> None:
    t0 = await _family(db)
    async with db.begin() as conn:
        r = await refresh.rotate(conn, t0, "other", NOW + 1, 100)
    assert r.outcome is refresh.Outcome.WRONG_CLIENT


async def test_refresh_idle_lifetime(db: Database) -> None:
    t0 = await _family(db, idle=100, absolute=1000)
    async with db.begin() as conn:
        assert (await refresh.rotate(conn, t0, "c", NOW + 100, 100)).outcome \
            is refresh.Outcome.EXPIRED


async def test_refresh_absolute_lifetime_not_extended_by_rotation(db: Database) -> None:
    tok = await _family(db, idle=100, absolute=250)
    t = NOW
    for _ in range(2):  # rotate every 90 s: idle never expires...
        t += 90
        async with db.begin() as conn:
            r = await refresh.rotate(conn, tok, "c", t, 100)
        assert r.outcome is refresh.Outcome.OK and r.new_token
        tok = r.new_token
    async with db.begin() as conn:  # ...but the family's absolute limit (NOW+250) holds
        row = await refresh.find(conn, tok)
        assert row is not None and row.expires_at == NOW + 250
        assert (await refresh.rotate(conn, tok, "c", NOW + 250, 100)).outcome \
            is refresh.Outcome.EXPIRED


async def test_session_end_revokes_its_refresh_families(db: Database) -> None:
    async with db.begin() as conn:
        uid = await users.add_user(conn, "dave", "h", [], NOW)
        value, s = await sessions.create(conn, uid, NOW, 3600)
        tok, _ = await refresh.issue(conn, user_id=uid, client_id="c", sid=s.sid, scope="[]",
                                     audience="api", now=NOW, idle_s=100, absolute_s=1000)
        assert (await sessions.lookup(conn, value, NOW)) == s
        assert await sessions.end(conn, s.sid) == 1
        assert await sessions.lookup(conn, value, NOW) is None
        assert (await refresh.rotate(conn, tok, "c", NOW, 100)).outcome is refresh.Outcome.REVOKED


async def test_key_rotation_schedule(db: Database, tmp_path: Path) -> None:
    kdir = str(tmp_path / "keys")
    async with db.begin() as conn:
        first = await keys.create_key(conn, kdir, "ES256", NOW, NOW)
        nxt = await keys.rotate(conn, kdir, "EdDSA", NOW + 10, lead_s=60, max_token_ttl_s=600)
        rows = await keys.list_keys(conn)
    assert keys.current_signer(rows, NOW + 10).kid == first.kid  # type: ignore[union-attr]
    assert keys.current_signer(rows, NOW + 70).kid == nxt.kid  # type: ignore[union-attr]
    old = next(r for r in rows if r.kid == first.kid)
    assert old.state(NOW + 70) == "retired" and old.published_at(NOW + 70 + 600)
    assert not old.published_at(NOW + 70 + 600 + keys.REMOVAL_MARGIN_S)
    assert next(r for r in rows if r.kid == nxt.kid).state(NOW + 10) == "next"
    for r in rows:
        assert stat.S_IMODE(os.stat(r.private_path).st_mode) == 0o600
        assert "d" not in r.public_jwk  # public parts only


async def test_audit_and_code_table_exist(db: Database) -> None:
    async with db.begin() as conn:
        await audit.record(conn, NOW, "login_failed", username="x", address="127.0.0.1")
        ev = await audit.recent(conn, "login_failed")
        assert ev[0]["username"] == "x"
        n = (await conn.execute(select(func.count()).select_from(auth_codes))).scalar_one()
        k = (await conn.execute(select(func.count()).select_from(signing_keys))).scalar_one()
    assert n == 0 and k == 0


async def test_purge_keeps_live_families_and_drops_dead_ones(db: Database) -> None:
    from wardgate.issuer.housekeeping import purge_expired

    short = await _family(db, idle=10, absolute=20)
    long = await _family(db, idle=10, absolute=10_000)
    async with db.begin() as conn:
        await purge_expired(conn, NOW + 100)
        assert await refresh.find(conn, short) is None
        # Expired by idle time but its family is still within its absolute life: kept, so a
        # replay is still recognised.
        assert await refresh.find(conn, long) is not None


async def test_standing_reads_roles_and_session_in_one_query(db: Database) -> None:
    async with db.begin() as conn:
        uid = await users.add_user(conn, "hana", "h", ["b-role", "a-role"], NOW)
        _, s = await sessions.create(conn, uid, NOW, 100)
        st = await users.standing(conn, uid, s.sid, NOW + 1)
        assert st == users.Standing(disabled=False, roles=("a-role", "b-role"), session_live=True)
        assert (await users.standing(conn, uid, s.sid, NOW + 100)).session_live is False  # type: ignore[union-attr]
        assert (await users.standing(conn, uid, "no-such-sid", NOW)).session_live is False  # type: ignore[union-attr]
        assert (await users.standing(conn, uid, None, NOW)).session_live is True  # type: ignore[union-attr]
        assert await users.standing(conn, 999, None, NOW) is None
        with pytest.raises(ValueError, match="role"):
            await users.set_roles(conn, uid, ["has space"])


async def test_retired_private_keys_are_destroyed(db: Database, tmp_path: Path) -> None:
    from wardgate.issuer.housekeeping import purge_expired

    kdir = str(tmp_path / "keys")
    async with db.begin() as conn:
        old = await keys.create_key(conn, kdir, "ES256", NOW, NOW)
        new = await keys.rotate(conn, kdir, "ES256", NOW, lead_s=10, max_token_ttl_s=600)
        await purge_expired(conn, NOW + 5)  # old still signs: kept
        assert Path(old.private_path).exists()
        await purge_expired(conn, NOW + 10)
        rows = {r.kid: r for r in await keys.list_keys(conn)}
    assert not Path(old.private_path).exists() and rows[old.kid].private_path == ""
    assert rows[old.kid].published_at(NOW + 10)  # its public key still verifies old tokens
    assert Path(new.private_path).exists()


def _claim_args(db: Database, tok: str) -> tuple[rawsql.Compiled, dict[str, object]]:
    params = refresh.claim_params(tok, NOW)
    assert params is not None
    return db.compiled(refresh.CLAIM), params


def _writes(db: Database, *rows: dict[str, object]) -> rawsql.Writes:
    """An audit event, then each refresh-token row."""
    return [(db.compiled(audit.INSERT, audit.COLUMNS), audit.event_row(NOW, "refresh")),
            *((db.compiled(refresh.INSERT, refresh.COLUMNS), r) for r in rows)]


async def _state(db: Database) -> tuple[list[bool], list[str]]:
    async with db.begin() as conn:
        used = (await conn.execute(select(refresh_tokens.c.used)
                                   .order_by(refresh_tokens.c.created_at))).scalars().all()
        return list(used), [e["event"] for e in await audit.recent(conn)]


async def test_claim_then_commits_the_claim_and_the_writes_together(db: Database) -> None:
    tok = await _family(db)
    _, _, nxt = refresh.successor(user_id=None, client_id="c", sid=None, scope="[]",
                                  audience="api", now=NOW + 1, idle_s=100, absolute_s=1000)
    claim, params = _claim_args(db, tok)
    seen: list[refresh.Claim] = []

    def then(row: rawsql.Row) -> tuple[str, rawsql.Writes]:
        seen.append(refresh.claim_from_row(row))
        return "done", _writes(db, nxt)

    assert await db.claim_then(claim, params, then) == "done"
    assert seen[0].row.client_id == "c" and seen[0].row.user_id is None
    assert await _state(db) == ([True, False], ["refresh"])
    # A used token matches no more: no row, nothing written, `then` not called.
    assert await db.claim_then(claim, params, then) is None
    assert len(seen) == 1 and await _state(db) == ([True, False], ["refresh"])


async def test_claim_then_is_all_or_nothing_when_a_late_insert_fails(db: Database) -> None:
    """The claim, the audit row and a failing INSERT (the claimed row's own key): none stays."""
    tok = await _family(db)
    _, _, clash = refresh.successor(user_id=None, client_id="c", sid=None, scope="[]",
                                    audience="api", now=NOW, idle_s=100, absolute_s=1000)
    clash["token_hash"] = sessions.digest(tok)
    claim, params = _claim_args(db, tok)
    with pytest.raises(DBAPIError):  # the driver's error, as SQLAlchemy's (a 503 answer)
        await db.claim_then(claim, params, lambda _row: (None, _writes(db, clash)))
    assert await _state(db) == ([False], [])
    # The pooled connections are clean afterwards: the token is claimed on the next try.
    for _ in range(2 * db.raw.size):
        assert await db.claim_then(claim, params, lambda _row: (1, _writes(db))) in (1, None)
    assert await _state(db) == ([True], ["refresh"])


async def test_claim_then_rolls_the_claim_back_when_the_decision_refuses(db: Database) -> None:
    tok = await _family(db)
    claim, params = _claim_args(db, tok)

    def refuse(_row: rawsql.Row) -> tuple[None, rawsql.Writes]:
        raise InvalidGrant("user disabled")

    with pytest.raises(InvalidGrant):
        await db.claim_then(claim, params, refuse)
    assert await _state(db) == ([False], [])
    # Not even the lock stays behind: a write through SQLAlchemy goes through at once.
    async with db.begin() as conn:
        await audit.record(conn, NOW, "probe")
    assert await db.claim_then(claim, params, lambda _row: (1, [])) == 1
    assert await _state(db) == ([True], ["probe"])


async def test_claim_then_cancelled_is_all_or_nothing(db: Database) -> None:
    """A cancelled grant: rolled back on PostgreSQL (nothing); on SQLite dropped before its
    batch leaves (nothing) or finished by the connection's thread (all). Either way the
    connection is outside any transaction before it is used again."""
    tok = await _family(db)
    claim, params = _claim_args(db, tok)
    # A pooled connection first, so that the claim itself is what the cancellation meets.
    assert await db.claim_then(*_claim_args(db, "unknown"), lambda _row: (1, [])) is None
    task = asyncio.ensure_future(db.claim_then(claim, params, lambda _row: (1, _writes(db))))
    await asyncio.sleep(0)  # the claim is on its way to the database
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert db.is_sqlite or db.raw._tasks  # PostgreSQL: rolled back in the background
    await asyncio.gather(*db.raw._tasks)
    assert await _state(db) == ([False], [])
    async with db.begin() as conn:  # no lock left behind (SQLite would wait 5 s, then fail)
        await audit.record(conn, NOW, "probe")
    assert await db.claim_then(claim, params, lambda _row: (1, [])) == 1


async def test_sqlite_grant_cancelled_after_its_batch_left_is_finished(tmp_path: Path) -> None:
    """On SQLite the decision runs on the connection's thread: hold it there, cancel the
    grant, let it go on: the transaction commits whole (all, never half)."""
    db = await open_database(f"sqlite:///{tmp_path / 'issuer.db'}")
    try:
        tok = await _family(db)
        started, go = threading.Event(), threading.Event()

        def then(_row: rawsql.Row) -> tuple[int, rawsql.Writes]:
            started.set()
            go.wait(10)
            return 1, _writes(db)

        task = asyncio.ensure_future(db.claim_then(*_claim_args(db, tok), then))
        assert await asyncio.to_thread(started.wait, 10)
        task.cancel()
        go.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.gather(*db.raw._tasks)
        assert await _state(db) == ([True], ["refresh"])
    finally:
        await db.close()


async def test_claim_then_serves_many_concurrent_grants(db: Database) -> None:
    """More concurrent transactions than pooled connections, one family each."""
    toks = [await _family(db) for _ in range(12)]

    async def one(tok: str) -> int | None:
        claim, params = _claim_args(db, tok)
        _, _, nxt = refresh.successor(user_id=None, client_id="c", sid=None, scope="[]",
                                      audience="api", now=NOW, idle_s=100, absolute_s=1000)
        return await db.claim_then(claim, params, lambda _row: (1, _writes(db, nxt)))

    assert await asyncio.gather(*(one(t) for t in toks)) == [1] * 12
    used, events = await _state(db)
    assert sorted(used) == [False] * 12 + [True] * 12 and events == ["refresh"] * 12


async def test_claim_then_one_failing_transaction_leaves_the_others(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent grants (on SQLite: one batch, one hand-off) are separate transactions."""
    batches: list[int] = []
    run_batch = rawsql._sqlite_batch

    def counted(conn: object, batch: list[object]) -> object:
        batches.append(len(batch))
        return run_batch(conn, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(rawsql, "_sqlite_batch", counted)
    toks = [await _family(db) for _ in range(5)]
    _, _, clash = refresh.successor(user_id=None, client_id="c", sid=None, scope="[]",
                                    audience="api", now=NOW, idle_s=100, absolute_s=1000)
    clash["token_hash"] = sessions.digest(toks[3])

    def decide(i: int) -> rawsql.Then[int]:
        def then(_row: rawsql.Row) -> tuple[int, rawsql.Writes]:
            if i == 1:
                raise InvalidGrant("refused")
            return i, _writes(db, clash) if i == 3 else _writes(db)
        return then

    results = await asyncio.gather(
        *(db.claim_then(*_claim_args(db, t), decide(i)) for i, t in enumerate(toks)),
        return_exceptions=True)
    assert results[0] == 0 and results[2] == 2 and results[4] == 4
    assert isinstance(results[1], InvalidGrant) and isinstance(results[3], DBAPIError)
    async with db.begin() as conn:
        used = dict((await conn.execute(
            select(refresh_tokens.c.token_hash, refresh_tokens.c.used))).all())
        events = [e["event"] for e in await audit.recent(conn)]
    assert [used[sessions.digest(t)] for t in toks] == [True, False, True, False, True]
    assert events == ["refresh"] * 3
    assert batches == ([5] if db.is_sqlite else [])


async def test_refresh_grant_has_one_winner_and_reuse_revokes_the_family(
        db: Database, tmp_path: Path) -> None:
    """The token endpoint's refresh path (claim, rotation, reuse) on both databases."""
    path = tmp_path / "issuer.yaml"
    path.write_text(yaml.safe_dump(base_config(tmp_path, database_url=db.url,
                                               keys={"algorithm": "ES256"})))
    iss = Issuer(load_file(IssuerConfig, path), clock=lambda: NOW)
    await iss.start()
    try:
        cid = iss.cfg.tokens.login_client_id
        async with iss.db.begin() as conn:
            uid = await users.add_user(conn, "erin", "h", ["reader"], NOW)
            _, s = await sessions.create(conn, uid, NOW, 3600)
            tok, _ = await refresh.issue(conn, user_id=uid, client_id=cid, sid=s.sid,
                                         scope='["orders:read"]', audience="api", now=NOW,
                                         idle_s=100, absolute_s=1000)
        results = await asyncio.gather(
            *(grants.refresh_grant(iss, tok, None, "t", public_only=True) for _ in range(8)),
            return_exceptions=True)
        wins = [r for r in results if not isinstance(r, BaseException)]
        assert len(wins) == 1, results
        assert all(isinstance(r, InvalidGrant) for r in results if isinstance(r, BaseException))
        out, _ = wins[0]
        assert out["scope"] == "orders:read" and out["refresh_token"] != tok
        # The losers were reuses: the family is revoked, the winner's new token included.
        with pytest.raises(InvalidGrant):
            await grants.refresh_grant(iss, out["refresh_token"], None, "t", public_only=True)
        async with iss.db.begin() as conn:
            events = [e["event"] for e in await audit.recent(conn)]
            revoked = (await conn.execute(select(refresh_tokens.c.revoked))).scalars().all()
        assert events.count("refresh") == 1 and events.count("refresh_reuse") >= 1
        assert len(revoked) == 2 and all(revoked)
    finally:
        await iss.stop()


def test_asyncpg_pool_takes_sqlalchemys_connect_arguments() -> None:
    """The URL's adapter-only options map to asyncpg.connect's own (or are dropped)."""
    db = Database("postgresql://u:p@127.0.0.1:5432/wg?prepared_statement_cache_size=7")
    assert isinstance(db.raw, rawsql.AsyncpgPool)
    assert db.raw._kwargs == {"host": "127.0.0.1", "port": 5432, "user": "u",
                              "password": "p", "database": "wg", "statement_cache_size": 7}


async def test_revocation_feed_cursor_never_passes_an_event_still_being_committed(
        db: Database) -> None:
    """Two transactions emit revocation events at once; a gateway polls in between. Seqs must
    become visible in order (SQLite: one writer; PostgreSQL: the advisory lock in `emit`),
    otherwise the later seq commits first, the poll's cursor moves past the earlier one and
    that event is never handed to the gateway."""
    async def poll(since: int) -> tuple[list[str], int]:
        async with db.begin() as conn:
            events, newest = await revocations.since(conn, since, now=NOW, grace_s=0)
        return [e.value for e in events], (events[-1].seq if events else max(newest, since))

    async def second() -> None:
        async with db.begin() as conn:
            await revocations.emit(conn, "jti", "b", now=NOW, until=NOW + 600, reason="t")

    seen: list[str] = []
    async with db.begin() as first:
        await revocations.emit(first, "jti", "a", now=NOW, until=NOW + 600, reason="t")
        other = asyncio.create_task(second())
        await asyncio.sleep(0.3)  # the second transaction commits now, if nothing orders it
        got, cursor = await poll(0)
        seen += got
    await asyncio.wait_for(other, 10)
    got, cursor = await poll(cursor)
    seen += got
    assert sorted(seen) == ["a", "b"]
