"""Token exchange (RFC 8693): a service trades its caller's token for one addressed elsewhere.

Policy is explicit per client (`token_exchange` in the issuer config): which subject tokens it
may present (by their audience), which audiences it may ask for, and an upper bound on scopes.
The new token keeps the caller as `sub`, names the service in `act` (nesting any earlier
actor, §4.1), never carries a scope the subject token lacked, and never outlives it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from wardgate.config.issuer import ExchangeRule
from wardgate.issuer import audit, clients, forms, tokens, users
from wardgate.issuer.errors import (
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    TemporarilyUnavailable,
    UnauthorizedClient,
)
from wardgate.issuer.keyring import KeysUnavailable
from wardgate.issuer.service import Issuer

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
_JWT = "urn:ietf:params:oauth:token-type:jwt"
_ACCEPTED_TYPES = (ACCESS_TOKEN, _JWT)  # our access tokens are JWTs: either name fits (§3)


def rule_for(iss: Issuer, client: clients.Client) -> ExchangeRule:
    for rule in iss.cfg.token_exchange:
        if rule.client == client.client_id:
            return rule
    raise UnauthorizedClient("client may not exchange tokens")


def _token_param(p: dict[str, Any], name: str) -> str:
    tok = forms.need_str(p, name, tokens.MAX_TOKEN_BYTES)
    kind = forms.need_str(p, f"{name}_type", 200)
    if kind not in _ACCEPTED_TYPES:
        raise InvalidRequest(f"{name}_type must be {ACCESS_TOKEN}")
    return tok


async def _live_claims(iss: Issuer, conn: AsyncConnection, tok: str, what: str,
                       now: int) -> dict[str, Any]:
    claims = tokens.verify_access(iss.ring, tok, issuer=iss.cfg.issuer, now=now)
    if claims is None or await iss.jti_revoked(conn, str(claims["jti"])):
        raise InvalidGrant(f"{what} is not a valid access token of this issuer")
    return claims


def _audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else [a for a in aud or [] if isinstance(a, str)]


async def exchange(iss: Issuer, conn: AsyncConnection, client: clients.Client,
                   p: dict[str, Any], address: str, jkt: str | None = None) -> dict[str, Any]:
    """The token response for an authenticated confidential `client`; raises OAuth errors.
    `jkt`: the request carried a DPoP proof, so the new token is bound to its key."""
    rule = rule_for(iss, client)
    now = iss.now()
    subject_token = _token_param(p, "subject_token")
    requested = forms.opt_str(p, "requested_token_type", 200)
    if requested is not None and requested not in _ACCEPTED_TYPES:
        raise InvalidRequest(f"requested_token_type must be {ACCESS_TOKEN}")
    subject = await _live_claims(iss, conn, subject_token, "subject_token", now)
    if not set(_audiences(subject)) & set(rule.subject_audiences):
        raise InvalidGrant("subject_token is not addressed to this client")

    audience = forms.opt_str(p, "audience", 512) or forms.opt_str(p, "resource", 512)
    if audience is None:
        audience = rule.audiences[0]
    elif audience not in rule.audiences:
        raise InvalidTarget("audience not allowed for this client's exchanges")

    granted = str(subject.get("scope", "")).split()
    allowed = [s for s in granted if s in rule.scopes]
    asked = forms.scope_list(forms.opt_str(p, "scope"))
    if asked:
        if not set(asked) <= set(allowed):
            raise InvalidScope("scope wider than the subject token or the exchange policy")
        scope = asked
    elif allowed:
        scope = allowed
    else:
        raise InvalidScope("the subject token holds none of the scopes this client may exchange")

    actor = client.client_id
    if "actor_token" in p:
        # §2.1: the actor proves itself with a token; here it must be one of this client's.
        actor_claims = await _live_claims(iss, conn, _token_param(p, "actor_token"),
                                          "actor_token", now)
        if actor_claims.get("client_id") != client.client_id:
            raise InvalidGrant("actor_token was not issued to this client")
        actor = str(actor_claims["sub"])
    act: dict[str, Any] = {"sub": actor}
    if "act" in subject:
        act["act"] = subject["act"]
    if len(tokens.act_chain(act)) > rule.max_chain:
        raise InvalidGrant("delegation chain longer than this client's max_chain")

    sub = str(subject["sub"])
    roles = [r for r in subject.get("roles", []) if isinstance(r, str)]
    sid = subject.get("sid") if isinstance(subject.get("sid"), str) else None
    if sub.isdigit():
        # A user's token: the user and the sign-in must still stand, with today's roles.
        st = await users.standing(conn, int(sub), sid, now)
        if st is None or st.disabled or not st.session_live:
            raise InvalidGrant("the user behind subject_token is no longer signed in")
        roles = list(st.roles)
    ttl = min(iss.cfg.tokens.access_ttl_s, int(subject["exp"]) - now)
    if ttl <= 0:
        raise InvalidGrant("subject_token expired")
    try:
        token, _ = tokens.mint_access(
            iss.ring, issuer=iss.cfg.issuer, sub=sub, audience=audience,
            client_id=client.client_id, scope=" ".join(scope), roles=roles, ttl_s=ttl, now=now,
            sid=sid, act=act, jkt=jkt)
    except KeysUnavailable:
        raise TemporarilyUnavailable("no signing key is active") from None
    await audit.record(conn, now, "token_exchange", client_id=client.client_id,
                       address=address, audience=audience, actor=actor,
                       subject_jti=str(subject["jti"]))
    # §2.2.1: no refresh token; the service exchanges again with a fresh subject token.
    return {"access_token": token, "issued_token_type": ACCESS_TOKEN,
            "token_type": "DPoP" if jkt else "Bearer",
            "expires_in": ttl, "scope": " ".join(scope)}
