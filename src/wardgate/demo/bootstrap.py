"""First-run setup of the demo issuer, through the issuer's own admin functions.

Keys: one signing key if none signs yet. Users: alice (admin) and bob (user), created on first
run; on later runs their password is set again, so the password printed is always the one that
works (a generated one changes every run; WARDGATE_DEMO_PASSWORD pins it). Client: demo-dpop,
a confidential client_credentials client that must use DPoP (RFC 9449 §5.2), whose secret is
the one in the state directory's `dpop-client-secret` (set again on every run).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from wardgate.config.issuer import IssuerConfig
from wardgate.issuer import admin

#: username -> roles (the roles' scopes are in examples/issuer.yaml)
DEMO_USERS: dict[str, list[str]] = {"alice": ["admin"], "bob": ["user"]}
PASSWORD_ENV = "WARDGATE_DEMO_PASSWORD"
#: the DPoP-bound demo client (examples/gateway.yaml's `dpop` route takes its tokens)
DPOP_CLIENT = "demo-dpop"
DPOP_CLIENT_SCOPES = ["orders:read"]


@dataclass(frozen=True)
class Bootstrap:
    password: str
    password_generated: bool
    new_key: str | None       # kid of a key generated on this run
    signing_key: str          # kid of the key that signs now
    created_users: tuple[str, ...]


def demo_password(env: dict[str, str]) -> tuple[str, bool]:
    given = env.get(PASSWORD_ENV, "")
    if given:
        return given, False
    # URL- and shell-safe, so it can be pasted into the printed curl commands as it is
    return secrets.token_urlsafe(12), True


async def _dpop_client(cfg: IssuerConfig, secret: str) -> None:
    if not any(c.client_id == DPOP_CLIENT for c in await admin.list_clients(cfg)):
        await admin.add_client(cfg, DPOP_CLIENT, name="DPoP demo client",
                               grant_types=["client_credentials"], scopes=DPOP_CLIENT_SCOPES,
                               dpop_bound=True)
    await admin.set_client_secret(cfg, DPOP_CLIENT, secret)


async def bootstrap(cfg: IssuerConfig, env: dict[str, str],
                    dpop_secret: str | None = None) -> Bootstrap:
    password, generated = demo_password(env)
    now = int(time.time())
    new_key = None
    keys = await admin.list_keys(cfg)
    signers = [k for k in keys if k.signs_at(now)]
    if not signers:
        row = await admin.generate_key(cfg)
        new_key = row.kid
        signing = row.kid
    else:
        signing = max(signers, key=lambda k: (k.activate_at, k.created_at)).kid
    existing = {u.username: u for u in await admin.list_users(cfg)}
    created = []
    for name, roles in DEMO_USERS.items():
        user = existing.get(name)
        if user is None:
            await admin.add_user(cfg, name, password, roles)
            created.append(name)
        else:
            if user.disabled:
                await admin.set_disabled(cfg, name, False)
            await admin.set_password(cfg, name, password)
    if dpop_secret is not None:
        await _dpop_client(cfg, dpop_secret)
    return Bootstrap(password, generated, new_key, signing, tuple(created))
