"""The token endpoint's grants (RFC 6749 §4.1.3, §4.4, §6) over one transaction each.

A grant either commits everything it wrote (tokens, rotation, audit) or nothing. The one
deliberate exception is refresh-token reuse: the family revocation and its audit event are
committed, then `invalid_grant` is raised.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wardgate.issuer import audit, clients, rawsql, refresh, revocations, sessions, users
from wardgate.issuer.errors import (
    InvalidClient,
    InvalidDpopProof,
    InvalidGrant,
    InvalidScope,
    InvalidTarget,
    UnauthorizedClient,
)
from wardgate.issuer.schema import auth_codes
from wardgate.issuer.service import Grant, Issuer

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 §4.1


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def check_dpop(client: clients.Client | None, jkt: str | None) -> None:
    """RFC 9449 §5.2: a client registered with dpop_bound_access_tokens must send a proof."""
    if client is not None and client.dpop_bound and jkt is None:
        raise InvalidDpopProof("this client must send a DPoP proof")


def _check_binding(row: refresh.RefreshRow, jkt: str | None) -> None:
    # RFC 9449 §5: a bound refresh token is used only with a proof of the same key. Checked
    # before anything is rotated, so a thief without the key cannot even burn the family.
    if row.jkt is not None and (jkt is None or not hmac.compare_digest(row.jkt, jkt)):
        raise InvalidDpopProof("the refresh token is bound to a DPoP key; prove it")


def _check_code_binding(bound: str | None, jkt: str | None) -> None:
    """RFC 9449 §10: a code requested with `dpop_jkt` is redeemed only with a proof of that
    key. Checked before the code is marked used, so a thief without the key cannot burn it."""
    if bound is None:
        return
    if jkt is None:
        raise InvalidDpopProof("the authorization code is bound to a DPoP key: send a proof")
    if not hmac.compare_digest(bound, jkt):
        raise InvalidGrant("the authorization code is bound to another DPoP key")


def pick_audience(client: clients.Client, requested: str | None) -> str:
    """RFC 8707: a requested resource must be one of the client's audiences."""
    if requested is None:
        return client.audiences[0]
    if requested not in client.audiences:
        raise InvalidTarget("audience not allowed for this client")
    return requested


async def refresh_grant(iss: Issuer, token: str, client: clients.Client | None,
                        address: str, *, public_only: bool = False,
                        scope: list[str] | None = None, jkt: str | None = None
                        ) -> tuple[dict[str, Any], refresh.RefreshRow]:
    """Rotate `token` for the authenticated `client`.

    `client` None: no client credentials were sent. With `public_only` the token's own client
    must then be a public one (RFC 6749 §6: confidential clients authenticate); without it the
    caller has authenticated the request otherwise (browser mode: cookie + CSRF).
    `scope` narrows the new access token (RFC 6749 §6); the refresh token keeps the original.
    `jkt`: the key of the request's DPoP proof; the new access token is bound to it, and a
    refresh token bound to a key needs a proof of that key (RFC 9449 §5).
    """
    check_dpop(client, jkt)
    now = iss.now()
    # The common case in one statement and one transaction: a live token, marked used as it
    # is read; the successor and the audit event in the same transaction (`claim_then`, on
    # the raw driver connection). Nothing was written when it returns None.
    params = refresh.claim_params(token, now)
    if params is not None:
        db = iss.db
        done = await db.claim_then(
            db.compiled(refresh.CLAIM), params,
            lambda r: _rotate_live(iss, refresh.claim_from_row(r), client, address, now,
                                   public_only, scope, jkt))
        if done is not None:
            return done
    # Not live: the step-by-step path says why, and revokes the family on reuse. A token
    # never becomes live again, so this second transaction sees what the claim saw or later.
    reused: refresh.RefreshRow | None = None
    async with iss.db.begin() as conn:
        row, owner_public = await refresh.find_with_owner(conn, token)
        if row is None:
            raise InvalidGrant("refresh token unknown")
        if client is None and public_only and not owner_public:
            raise InvalidClient("client authentication required")
        _check_binding(row, jkt)
        if scope is not None and not set(scope) <= set(json.loads(row.scope)):
            raise InvalidScope("scope exceeds the original grant")
        st = (await users.standing(conn, row.user_id, row.sid, now)
              if row.user_id is not None else None)
        rot = await refresh.rotate(conn, token, client.client_id if client else None, now,
                                   iss.cfg.tokens.refresh_idle_s, row=row)
        if rot.outcome is refresh.Outcome.REUSED:
            assert rot.row is not None
            reused = rot.row
            await audit.record(conn, now, "refresh_reuse", client_id=rot.row.client_id,
                               address=address, family=rot.row.family_id,
                               user_id=rot.row.user_id)
            await revocations.emit_family(conn, rot.row.family_id, now=now,
                                          reason="refresh_reuse")
            if iss.detection is not None:  # published with the login detections
                iss.detection.refresh_reuse(address, rot.row.client_id, rot.row.family_id,
                                            rot.row.user_id)
        elif rot.outcome is not refresh.Outcome.OK:
            raise InvalidGrant(f"refresh token {rot.outcome.value}")
        else:
            assert rot.row is not None and rot.new_token is not None
            out, claims = iss.mint(_grant_for(rot.row, st, scope, jkt), now)
            await revocations.remember_access(conn, claims, rot.row.family_id)
            out["refresh_token"] = rot.new_token
            await audit.record(conn, now, "refresh", client_id=rot.row.client_id,
                               address=address, family=rot.row.family_id)
            return out, rot.row
    assert reused is not None
    raise InvalidGrant("refresh token reused; its family is revoked")


def _rotate_live(iss: Issuer, claim: refresh.Claim, client: clients.Client | None,
                 address: str, now: int, public_only: bool, scope: list[str] | None,
                 jkt: str | None = None
                 ) -> tuple[tuple[dict[str, Any], refresh.RefreshRow], rawsql.Writes]:
    """Decide on a claimed live token: the answer, and the rows that go with the COMMIT.

    Runs inside `Database.claim_then`'s transaction. The checks are the step-by-step path's,
    in its order (`rotate` tells a wrong client before anything else about a live token);
    each raises, which rolls the claim back.
    """
    row = claim.row
    if client is None and public_only and not claim.owner_public:
        raise InvalidClient("client authentication required")
    _check_binding(row, jkt)
    if scope is not None and not set(scope) <= set(json.loads(row.scope)):
        raise InvalidScope("scope exceeds the original grant")
    if client is not None and row.client_id != client.client_id:
        # RFC 6749 §6: the token is bound to the client it was issued to.
        raise InvalidGrant(f"refresh token {refresh.Outcome.WRONG_CLIENT.value}")
    st = None
    if row.user_id is not None and claim.user_disabled is not None:
        live = row.sid is None or (claim.session_ended is False
                                   and claim.session_expires_at is not None
                                   and claim.session_expires_at > now)
        st = users.Standing(disabled=claim.user_disabled, roles=claim.roles, session_live=live)
    out, claims = iss.mint(_grant_for(row, st, scope, jkt), now)
    out["refresh_token"], _, successor = refresh.successor(
        user_id=row.user_id, client_id=row.client_id, sid=row.sid, scope=row.scope,
        audience=row.audience, now=now, idle_s=iss.cfg.tokens.refresh_idle_s, absolute_s=0,
        family_id=row.family_id, parent_hash=row.token_hash,
        family_expires_at=row.family_expires_at, jkt=row.jkt)
    db = iss.db
    writes: rawsql.Writes = [(db.compiled(refresh.INSERT, refresh.COLUMNS), successor)]
    issued = revocations.access_row(claims, row.family_id)
    if issued is not None:
        writes.append((db.compiled(revocations.ACCESS_INSERT, revocations.ACCESS_COLUMNS),
                       issued))
    return (out, row), writes + [
        (db.compiled(audit.INSERT, audit.COLUMNS),
         audit.event_row(now, "refresh", client_id=row.client_id, address=address,
                         family=row.family_id))]


def _grant_for(row: refresh.RefreshRow, st: users.Standing | None,
               narrowed: list[str] | None, jkt: str | None = None) -> Grant:
    """Checked only after a successful rotation, so reuse detection always comes first."""
    scope = narrowed if narrowed is not None else json.loads(row.scope)
    roles: list[str] = []
    sub = row.client_id
    if row.user_id is not None:
        # Roles are read afresh: a role removed since login is gone from the next token.
        if st is None or st.disabled:
            raise InvalidGrant("user disabled")
        if not st.session_live:
            raise InvalidGrant("session ended")
        roles, sub = list(st.roles), str(row.user_id)
    return Grant(sub=sub, client_id=row.client_id, scope=scope, audience=row.audience,
                 roles=roles, user_id=row.user_id, sid=row.sid, with_refresh=False, jkt=jkt)


async def client_credentials(iss: Issuer, conn: AsyncConnection, client: clients.Client,
                             scope: list[str], audience: str | None,
                             address: str, jkt: str | None = None) -> dict[str, Any]:
    check_dpop(client, jkt)
    if "client_credentials" not in client.grant_types or client.public:
        raise UnauthorizedClient("client may not use client_credentials")
    if not set(scope) <= set(client.scopes):
        raise InvalidScope("scope not allowed for this client")
    now = iss.now()
    # RFC 6749 §4.4.3: no refresh token; the client can always ask again.
    g = Grant(sub=client.client_id, client_id=client.client_id,
              scope=scope or list(client.scopes), audience=pick_audience(client, audience),
              roles=[], user_id=None, sid=None, with_refresh=False, jkt=jkt)
    out, _ = await iss.tokens(conn, g, now)
    await audit.record(conn, now, "client_credentials", client_id=client.client_id,
                       address=address)
    return out


async def authorization_code(iss: Issuer, client: clients.Client, code: str,
                             redirect_uri: str | None, verifier: str | None,
                             address: str, jkt: str | None = None) -> dict[str, Any]:
    check_dpop(client, jkt)
    now = iss.now()
    replayed = False
    async with iss.db.begin() as conn:
        if "authorization_code" not in client.grant_types:
            raise UnauthorizedClient("client may not use authorization_code")
        row = (await conn.execute(select(auth_codes).where(
            auth_codes.c.code_hash == sessions.digest(code)))).first() if len(code) < 256 else None
        if row is None:
            raise InvalidGrant("unknown authorization code")
        c = row._mapping
        if c["client_id"] != client.client_id:
            raise InvalidGrant("code was issued to another client")
        if c["used"]:
            # RFC 6749 §4.1.2: a code used twice revokes the tokens issued from it.
            replayed = True
            if c["family_id"]:
                await refresh.revoke_family(conn, c["family_id"])
                await revocations.emit_family(conn, c["family_id"], now=now,
                                              reason="code_replay")
            await audit.record(conn, now, "code_replay", client_id=client.client_id,
                               address=address)
        else:
            if c["expires_at"] <= now:
                raise InvalidGrant("authorization code expired")
            if redirect_uri != c["redirect_uri"]:
                raise InvalidGrant("redirect_uri differs from the authorization request")
            # RFC 7636 §4.6: S256 only; any mismatch or malformed verifier is invalid_grant.
            if verifier is None or not _VERIFIER.match(verifier) or not hmac.compare_digest(
                    s256(verifier), c["code_challenge"]):
                raise InvalidGrant("PKCE verification failed")
            _check_code_binding(c["dpop_jkt"], jkt)
            res = await conn.execute(update(auth_codes).where(
                auth_codes.c.code_hash == c["code_hash"], auth_codes.c.used.is_(False))
                .values(used=True))
            if res.rowcount != 1:
                raise InvalidGrant("authorization code already used")
            user = await users.get_by_id(conn, c["user_id"])
            if user is None or user.disabled or not await sessions.is_live(conn, c["sid"], now):
                raise InvalidGrant("the sign-in behind this code has ended")
            scope = json.loads(c["scope"])
            g = Grant(sub=str(user.id), client_id=client.client_id, scope=scope,
                      audience=c["audience"], roles=list(user.roles), user_id=user.id,
                      sid=c["sid"], with_refresh="refresh_token" in client.grant_types,
                      jkt=jkt, refresh_jkt=jkt if client.public else None)
            out, family = await iss.tokens(conn, g, now)
            if family is not None:
                await iss.mark_code_family(conn, c["code_hash"], family)
            if "openid" in scope:
                out["id_token"] = iss.id_token(sub=str(user.id), client_id=client.client_id,
                                               now=now, auth_time=c["auth_time"], sid=c["sid"],
                                               nonce=c["nonce"], username=user.username)
            await audit.record(conn, now, "code_exchanged", username=user.username,
                               client_id=client.client_id, address=address)
            return out
    assert replayed
    raise InvalidGrant("authorization code already used")
