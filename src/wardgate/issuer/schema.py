"""The issuer's tables (SQLAlchemy Core): one schema for SQLite and PostgreSQL.

Times are integer Unix seconds; lists are JSON text, so both backends store them the same way.
Secrets are never stored: refresh tokens, authorization codes and sessions by SHA-256 of a
256-bit random value, client secrets likewise (they are generated, never chosen), passwords by
argon2id.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 1

metadata = MetaData()

meta = Table(
    "wg_meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "wg_users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(150), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
)

roles = Table(
    "wg_roles", metadata,
    Column("name", String(100), primary_key=True),
    Column("scopes", Text, nullable=False),  # JSON list
)

user_roles = Table(
    "wg_user_roles", metadata,
    Column("user_id", Integer, ForeignKey("wg_users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(100), ForeignKey("wg_roles.name", ondelete="CASCADE"), primary_key=True),
)

clients = Table(
    "wg_clients", metadata,
    Column("client_id", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
    # none (public, PKCE only) | client_secret_basic | client_secret_post | private_key_jwt
    Column("auth_method", String(32), nullable=False),
    Column("secret_hash", String(64), nullable=True),
    Column("jwks", Text, nullable=True),
    Column("grant_types", Text, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("audiences", Text, nullable=False),
    Column("redirect_uris", Text, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    # RFC 9449 §5.2 dpop_bound_access_tokens: the client must send a DPoP proof
    Column("dpop_bound", Boolean, nullable=True),
)

sessions = Table(
    "wg_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("sid", String(32), nullable=False, unique=True),  # public id, the `sid` claim
    Column("user_id", Integer, ForeignKey("wg_users.id", ondelete="CASCADE"), nullable=False),
    Column("auth_time", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("ended", Boolean, nullable=False, default=False),
)

refresh_tokens = Table(
    "wg_refresh_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family_id", String(32), nullable=False),
    Column("parent_hash", String(64), nullable=True),
    Column("user_id", Integer, nullable=True),
    Column("client_id", String(100), nullable=False),
    Column("sid", String(32), nullable=True),
    Column("scope", Text, nullable=False),
    Column("audience", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),  # idle limit, capped by the family's
    Column("family_expires_at", BigInteger, nullable=False),  # absolute limit
    Column("used", Boolean, nullable=False, default=False),
    Column("revoked", Boolean, nullable=False, default=False),
    # RFC 9449 §5: the JWK thumbprint a public client's refresh token is bound to
    Column("jkt", String(64), nullable=True),
    Index("ix_wg_refresh_family", "family_id"),
    Index("ix_wg_refresh_sid", "sid"),
)

auth_codes = Table(
    "wg_auth_codes", metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(100), nullable=False),
    Column("user_id", Integer, nullable=False),
    Column("sid", String(32), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("audience", Text, nullable=False),
    Column("nonce", Text, nullable=True),
    Column("code_challenge", String(128), nullable=False),
    Column("auth_time", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used", Boolean, nullable=False, default=False),
    Column("family_id", String(32), nullable=True),  # tokens issued from it, revoked on replay
    Column("dpop_jkt", String(64), nullable=True),  # RFC 9449 §10: bound to this DPoP key
)

signing_keys = Table(
    "wg_signing_keys", metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("public_jwk", Text, nullable=False),
    Column("private_path", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("activate_at", BigInteger, nullable=False),  # signs from here (published from creation)
    Column("retire_at", BigInteger, nullable=True),  # stops signing
    Column("remove_at", BigInteger, nullable=True),  # leaves the JWKS (its tokens have expired)
)

revoked_jti = Table(
    "wg_revoked_jti", metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
)

used_assertions = Table(
    "wg_used_assertions", metadata,
    Column("client_id", String(100), primary_key=True),
    Column("jti", String(255), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
)

audit_events = Table(
    "wg_audit_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("event", String(64), nullable=False),
    Column("username", String(150), nullable=True),
    Column("client_id", String(100), nullable=True),
    Column("address", String(64), nullable=True),
    Column("detail", Text, nullable=False),
    Index("ix_wg_audit_event", "event"),
)

# The revocation feed (wardgate.revoke): every event the gateways must apply, in order. `seq`
# is the feed's cursor; rows go once `until` (plus the serving grace) has passed.
revocation_events = Table(
    "wg_revocation_events", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # jti | sub | client
    Column("value", String(256), nullable=False),
    Column("before", BigInteger, nullable=False),  # sub/client: tokens with iat < before; jti: 0
    Column("until", BigInteger, nullable=False),  # the last covered token is dead after this
    Column("at", BigInteger, nullable=False),
    Column("reason", String(32), nullable=False),
    Index("ix_wg_revocation_until", "until"),
    sqlite_autoincrement=True,  # a seq is never reused after a purge: it is a cursor
)

# Access tokens issued inside a session or a refresh family (not the token, its jti): what a
# logout, a refresh-token reuse or an RFC 7009 refresh revocation must revoke by jti.
issued_access = Table(
    "wg_issued_access", metadata,
    Column("jti", String(64), primary_key=True),
    Column("family_id", String(32), nullable=True),
    Column("sid", String(32), nullable=True),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_wg_issued_family", "family_id"),
    Index("ix_wg_issued_sid", "sid"),
)
