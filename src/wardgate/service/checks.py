"""`require_scopes(...)` / `require_roles(...)`: the gateway's requirement tree, applied in the
service, with the gateway's answers (RFC 6750 §3.1: 401 without a token, 403
insufficient_scope with the missing scopes in `scope=`).

A requirement is usable three ways:

    require_scopes("orders:read").check(identity)            # any framework; raises AuthError
    @app.get("/x")
    def x(who: Identity = Depends(require_roles("admin"))):  # FastAPI dependency
    ...
"""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from wardgate.auth.identity import Identity
from wardgate.auth.policy import compile_requirement
from wardgate.config.auth import Requirement as RequirementConfig
from wardgate.errors import InsufficientScope, MissingToken

#: Where the ASGI middleware leaves the verified caller (also on `request.state.identity`).
SCOPE_KEY = "wardgate.identity"


class Requirement:
    def __init__(self, config: RequirementConfig) -> None:
        self.config = config
        self._check = compile_requirement(config)

    def check(self, identity: Identity | None, params: dict[str, str] | None = None) -> Identity:
        """Return the identity when it satisfies the requirement; raise the gateway's error."""
        if identity is None:
            raise MissingToken("Authentication required")
        denied = self._check(identity, params or {})
        if denied is not None:
            raise InsufficientScope("The access token lacks the privileges this request needs",
                                    scope=" ".join(denied) or None)
        return identity

    async def __call__(self, request: HTTPConnection) -> Identity:
        """FastAPI/Starlette dependency: checks what WardgateMiddleware put on the request."""
        ident: Any = request.scope.get(SCOPE_KEY)
        return self.check(ident if isinstance(ident, Identity) else None,
                          {k: str(v) for k, v in request.path_params.items()})

    def __repr__(self) -> str:
        return f"Requirement({self.config.model_dump(exclude_defaults=True)!r})"


def require_scopes(*scopes: str) -> Requirement:
    """Every listed scope must be granted (the `scope`/`scp` claim)."""
    if not scopes:
        raise ValueError("name at least one scope")
    return Requirement(RequirementConfig(scopes=list(scopes)))


def require_roles(*roles: str) -> Requirement:
    """Every listed role must be held (the provider's `roles_claim`)."""
    if not roles:
        raise ValueError("name at least one role")
    return Requirement(RequirementConfig(roles=list(roles)))


def authenticated() -> Requirement:
    """Any verified caller (an empty requirement still needs a token: default deny)."""
    return Requirement(RequirementConfig())
