"""Discovery (OIDC Discovery 1.0 §3 / RFC 8414) and the JWKS (RFC 7517)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from wardgate.issuer.clientauth import ASSERTION_ALGS
from wardgate.issuer.deps import issuer_of
from wardgate.issuer.exchange import GRANT_TYPE

router = APIRouter(tags=["discovery"])

# Verifiers refetch on an unknown kid anyway; rotation's lead time is longer than this.
JWKS_MAX_AGE_S = 300


@router.get("/.well-known/openid-configuration")
async def discovery(request: Request) -> JSONResponse:
    iss = issuer_of(request)
    u = iss.url
    auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
    doc: dict[str, Any] = {
        "issuer": iss.cfg.issuer,
        "authorization_endpoint": u("/authorize"),
        "token_endpoint": u("/token"),
        "jwks_uri": u("/.well-known/jwks.json"),
        "userinfo_endpoint": u("/userinfo"),
        "revocation_endpoint": u("/revoke"),
        "introspection_endpoint": u("/introspect"),
        "end_session_endpoint": u("/logout"),
        "login_endpoint": u("/login"),
        "session_refresh_endpoint": u("/session/refresh"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
                                  *([GRANT_TYPE] if iss.cfg.token_exchange else [])],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": iss.ring.algorithms() or [iss.cfg.keys.algorithm],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods[:3],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "offline_access"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid",
                             "preferred_username", "roles", "scope", "client_id", "act"],
        "authorization_response_iss_parameter_supported": True,
        # RFC 9449 §5.1: the token endpoint and /login bind tokens to a DPoP proof's key
        "dpop_signing_alg_values_supported": list(iss.cfg.dpop.algorithms),
    }
    return JSONResponse(doc, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> JSONResponse:
    iss = issuer_of(request)
    return JSONResponse(iss.ring.jwks, media_type="application/jwk-set+json",
                        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_S}"})
