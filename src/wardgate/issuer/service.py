"""The issuer's state and core operations, shared by every route.

One `Issuer` per process owns the database, the key ring, the password hasher and the
throttles; routes only parse requests and render answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from wardgate import logs
from wardgate.config.issuer import IssuerConfig
from wardgate.issuer import (
    audit,
    clients,
    housekeeping,
    keys,
    refresh,
    revocations,
    tokens,
    users,
)
from wardgate.issuer.db import Database
from wardgate.issuer.errors import AccessDenied, InvalidScope, SlowDown, TemporarilyUnavailable
from wardgate.issuer.keyring import KeyRing, KeysUnavailable
from wardgate.issuer.passwords import Passwords
from wardgate.issuer.schema import auth_codes, meta, revoked_jti
from wardgate.issuer.throttle import Throttle

log = logging.getLogger("wardgate.issuer")

OIDC_SCOPES = frozenset({"openid", "profile", "offline_access"})
WILDCARD = "*"
PURGE_INTERVAL_S = 600
LOGIN_FAILED = "invalid username or password"  # one message for every failure (no oracle)


class TaskHealth:
    """One log line per state change of a periodic task, not one per run: `<name>_failing`
    when a run fails after a good one (or the first run fails), `<name>_ok` when a run
    succeeds again. A database that cannot be reached (a driver error or a bare OSError from
    the pool's connect) is an outage, named by its exception type; anything else is a bug,
    and its traceback is logged once, with the transition. Sans-I/O apart from the log."""

    __slots__ = ("name", "clock", "down_since", "failures")

    def __init__(self, name: str, clock: Callable[[], float]) -> None:
        self.name = name
        self.clock = clock
        self.down_since: float | None = None
        self.failures = 0  # runs failed since the last good one

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.down_since is not None:
            return
        self.down_since = self.clock()
        database = isinstance(exc, (DBAPIError, OSError))
        logs.event(self.name + "_failing", level="warning", error=type(exc).__name__,
                   database_unavailable=database)
        if not database:
            log.error("%s failed", self.name, exc_info=exc)

    def ok(self) -> None:
        if self.down_since is None:
            return
        logs.event(self.name + "_ok", failed_for_s=round(self.clock() - self.down_since, 1),
                   failed_runs=self.failures)
        self.down_since = None
        self.failures = 0


@dataclass(frozen=True)
class Grant:
    """Who a token is for, as decided by a grant; turned into tokens by `Issuer.tokens`."""
    sub: str
    client_id: str
    scope: list[str]
    audience: str
    roles: list[str]
    user_id: int | None
    sid: str | None
    with_refresh: bool
    jkt: str | None = None  # RFC 9449: the DPoP key the access token is bound to
    #: the key the refresh token is bound to (public clients, RFC 9449 §5)
    refresh_jkt: str | None = None


class Issuer:
    def __init__(self, cfg: IssuerConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.db = Database(cfg.database_url)
        self.ring = KeyRing()
        self.passwords = Passwords(cfg.password_hash)
        t = cfg.throttle
        self.user_throttle = Throttle(free=t.free_failures_per_user, base_delay=t.base_delay_s,
                                      max_delay=t.max_delay_s, forget_after=t.forget_after_s)
        self.addr_throttle = Throttle(free=t.free_failures_per_address,
                                      base_delay=t.base_delay_s, max_delay=t.max_delay_s,
                                      forget_after=t.forget_after_s)
        self.csrf_key = b""
        #: names this database's revocation feed: a gateway seeing another epoch starts over
        self.revocation_epoch = ""
        self.relay: Any = None  # wardgate.revoke.relay.Relay, when state.redis_url is set
        self.dpop: Any = None  # wardgate.issuer.dpop.IssuerDpop, made at start
        #: login detection (wardgate.issuer.detection), with a `detection:` section
        self.detection: Any = None
        if cfg.detection is not None and cfg.detection.enabled:
            from wardgate.issuer.detection import IssuerDetection

            self.detection = IssuerDetection(cfg)
        self._reloader: asyncio.Task[None] | None = None

    def now(self) -> int:
        return int(self.clock())

    def url(self, path: str) -> str:
        return self.cfg.issuer + path

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await self.db.migrate()
        now = self.now()
        async with self.db.begin() as conn:
            await users.sync_roles(conn, self.cfg.roles)
            self.csrf_key = bytes.fromhex(await self._meta_secret(conn, "csrf_key"))
            self.revocation_epoch = (await self._meta_secret(conn, "revocation_epoch"))[:16]
            from wardgate.issuer.dpop import IssuerDpop

            # one nonce key in the database: every issuer process accepts the others' nonces
            self.dpop = IssuerDpop(self.cfg.dpop, bytes.fromhex(
                await self._meta_secret(conn, "dpop_nonce_key")), self.clock)
            await self._ensure_login_client(conn, now)
            detect_key = bytes.fromhex(await self._meta_secret(conn, "detect_fp_key"))
            if not await keys.list_keys(conn):
                # First start: one key that signs at once (rotation adds the lead time later).
                k = await keys.create_key(conn, self.cfg.keys.dir, self.cfg.keys.algorithm,
                                          now, now)
                await audit.record(conn, now, "key_generated", kid=k.kid, alg=k.alg)
        await self.ring.reload(self.db, now)
        if self.detection is not None:
            await self.detection.start(detect_key, self.db)
        self._reloader = asyncio.create_task(self._reload_loop())
        if self.cfg.state.urls():
            from wardgate.revoke.relay import Relay

            self.relay = Relay(self.cfg, self.db)
            await self.relay.start()

    async def stop(self) -> None:
        if self.detection is not None:
            await self.detection.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self._reloader is not None:
            self._reloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloader
        await self.db.close()

    async def _reload_loop(self) -> None:
        last_purge = 0.0
        health = TaskHealth("key_reload", self.clock)
        while True:
            await asyncio.sleep(self.cfg.keys.reload_interval_s)
            try:
                await self.ring.reload(self.db, self.now())
                if self.clock() - last_purge >= PURGE_INTERVAL_S:
                    last_purge = self.clock()
                    async with self.db.begin() as conn:
                        await housekeeping.purge_expired(conn, self.now(),
                                                        self.cfg.revocations.grace_s)
            except Exception as exc:  # noqa: BLE001 - a bad read must not stop future reloads
                health.failed(exc)
            else:
                health.ok()

    async def _meta_secret(self, conn: AsyncConnection, name: str) -> str:
        row = (await conn.execute(select(meta.c.value).where(meta.c.key == name))).first()
        if row is not None:
            return str(row[0])
        value = secrets.token_hex(32)
        await conn.execute(insert(meta).values(key=name, value=value))
        return value

    async def _ensure_login_client(self, conn: AsyncConnection, now: int) -> None:
        cid = self.cfg.tokens.login_client_id
        if await clients.get_client(conn, cid) is None:
            await clients.add_client(
                conn, client_id=cid, name="first-party login (POST /login)", auth_method="none",
                grant_types=["refresh_token"], scopes=[WILDCARD],
                audiences=[self.cfg.tokens.default_audience], redirect_uris=[], jwks=None,
                now=now)

    # -- passwords -----------------------------------------------------------------------------
    async def check_password(self, username: str, password: str, address: str,
                             route: str = "/login") -> users.User:
        """Throttled password check; raises SlowDown or AccessDenied (same text every time),
        or LoginRefused while login detection holds a verdict on the client's network."""
        det = self.detection
        if det is not None:
            det.refuse(address)  # before the throttle and the hash: nothing is checked
        now_f = self.clock()
        ukey = "u:" + username.casefold()
        akey = "a:" + address
        wait = max(self.user_throttle.retry_after(ukey, now_f),
                   self.addr_throttle.retry_after(akey, now_f))
        if wait > 0:
            if det is not None:  # a throttled attempt is a failure the detector sees too
                det.attempt(address, username, None, False, route)
            raise SlowDown(wait)
        async with self.db.begin() as conn:
            user = await users.get_by_name(conn, username)
        ok, rehash = await self.passwords.verify(user.password_hash if user else None, password)
        now = self.now()
        if not ok or user is None or user.disabled:
            self.user_throttle.failure(ukey, now_f)
            self.addr_throttle.failure(akey, now_f)
            if det is not None:
                det.attempt(address, username, password, False, route)
            async with self.db.begin() as conn:
                await audit.record(conn, now, "login_failed", username=username[:150],
                                   address=address)
            raise AccessDenied(LOGIN_FAILED)
        self.user_throttle.success(ukey)
        if det is not None:
            det.attempt(address, username, password, True, route)
        if rehash:
            # Parameters changed since this hash was made: upgrade it now (argon2 §rehash).
            new_hash = await self.passwords.hash(password)
            async with self.db.begin() as conn:
                await users.set_password_hash(conn, username, new_hash)
                await audit.record(conn, now, "password_rehashed", username=username)
        return user

    # -- tokens -------------------------------------------------------------------------------
    async def tokens(self, conn: AsyncConnection, g: Grant,
                     now: int) -> tuple[dict[str, Any], str | None]:
        """Mint the access token and, if the grant allows, store a new refresh family.

        Runs inside the caller's transaction; returns (response body, refresh family id).
        """
        t = self.cfg.tokens
        out, claims = self.mint(g, now)
        family = None
        if g.with_refresh:
            rt, family = await refresh.issue(
                conn, user_id=g.user_id, client_id=g.client_id, sid=g.sid,
                scope=json.dumps(g.scope), audience=g.audience, now=now,
                idle_s=t.refresh_idle_s, absolute_s=t.refresh_absolute_s, jkt=g.refresh_jkt)
            out["refresh_token"] = rt
        await revocations.remember_access(conn, claims, family)
        return out, family

    def access_answer(self, g: Grant, now: int) -> dict[str, Any]:
        """The token response without a refresh token: mint and sign the access token."""
        return self.mint(g, now)[0]

    def mint(self, g: Grant, now: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The token response without a refresh token, and the access token's claims."""
        t = self.cfg.tokens
        scope = " ".join(g.scope)
        try:
            access, claims = tokens.mint_access(
                self.ring, issuer=self.cfg.issuer, sub=g.sub, audience=g.audience,
                client_id=g.client_id, scope=scope, roles=g.roles, ttl_s=t.access_ttl_s,
                now=now, sid=g.sid, jkt=g.jkt)
        except KeysUnavailable:
            raise TemporarilyUnavailable("no signing key is active") from None
        # RFC 9449 §5.1: a bound token is of type DPoP
        return {"access_token": access, "token_type": "DPoP" if g.jkt else "Bearer",
                "expires_in": t.access_ttl_s, "scope": scope}, claims

    def id_token(self, *, sub: str, client_id: str, now: int, auth_time: int, sid: str,
                 nonce: str | None, username: str) -> str:
        try:
            return tokens.mint_id_token(
                self.ring, issuer=self.cfg.issuer, sub=sub, client_id=client_id,
                ttl_s=self.cfg.tokens.id_token_ttl_s, now=now, auth_time=auth_time, sid=sid,
                nonce=nonce, extra={"preferred_username": username})
        except KeysUnavailable:
            raise TemporarilyUnavailable("no signing key is active") from None

    def user_grant(self, user: users.User, client: clients.Client, requested: list[str],
                   audience: str, sid: str | None) -> Grant:
        allowed = set(user.scopes) | OIDC_SCOPES
        if WILDCARD not in client.scopes:
            allowed &= set(client.scopes)
        if requested:
            if not set(requested) <= allowed:
                raise InvalidScope("scope not allowed for this user or client")
            scope = requested
        else:
            scope = sorted(allowed - OIDC_SCOPES) if WILDCARD in client.scopes else sorted(allowed)
        return Grant(sub=str(user.id), client_id=client.client_id, scope=scope,
                     audience=audience, roles=list(user.roles), user_id=user.id, sid=sid,
                     with_refresh="refresh_token" in client.grant_types)

    def max_token_ttl(self) -> int:
        return max(self.cfg.tokens.access_ttl_s, self.cfg.tokens.id_token_ttl_s)

    async def revoke_jti(self, conn: AsyncConnection, jti: str, exp: int,
                         reason: str = "rfc7009") -> None:
        found = (await conn.execute(select(revoked_jti.c.jti)
                                    .where(revoked_jti.c.jti == jti))).first()
        if found is None:
            await conn.execute(insert(revoked_jti).values(jti=jti, expires_at=exp))
            await revocations.emit(conn, "jti", jti, now=self.now(), until=exp, reason=reason)

    async def jti_revoked(self, conn: AsyncConnection, jti: str) -> bool:
        return (await conn.execute(select(revoked_jti.c.jti)
                                   .where(revoked_jti.c.jti == jti))).first() is not None

    async def mark_code_family(self, conn: AsyncConnection, code_hash: str, family: str) -> None:
        await conn.execute(update(auth_codes).where(auth_codes.c.code_hash == code_hash)
                           .values(family_id=family))
