"""Service-side helper: learn and check who is calling, behind (or without trusting) the gateway.

    from wardgate.service import ServiceAuth, WardgateMiddleware, require_roles, require_scopes

    auth = ServiceAuth.zero_trust("http://127.0.0.1:9000", "api")   # verify the JWT (JWKS)
    auth = ServiceAuth.trust_gateway(sub="X-User-Id", roles="X-User-Roles")  # or trust headers

    app = FastAPI()
    app.add_middleware(WardgateMiddleware, auth=auth)

    @app.get("/reports")
    def reports(who: Identity = Depends(require_roles("admin"))): ...

Without an ASGI framework: `identity = await authenticate(auth, headers, peer=addr)` (or, in
a synchronous framework, `BlockingAuth(auth).authenticate(headers, peer=addr)`), then
`require_scopes("a").check(identity)`; both raise `AuthError`, and `render(err)` gives the
(status, headers, body) the gateway would send. Reference: docs/demo.md.
"""

from wardgate.auth.identity import Identity
from wardgate.service.asgi import WardgateMiddleware
from wardgate.service.auth import ServiceAuth, authenticate
from wardgate.service.blocking import BlockingAuth
from wardgate.service.checks import Requirement, authenticated, require_roles, require_scopes
from wardgate.service.errors import (
    AuthError,
    GatewayError,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    ServiceUnavailable,
    render,
)
from wardgate.service.trusted import GatewayHeaders

__all__ = ["AuthError", "BlockingAuth", "GatewayError", "GatewayHeaders", "Identity", "InsufficientScope",
           "InvalidRequest", "InvalidToken", "MissingToken", "Requirement", "ServiceAuth",
           "ServiceUnavailable", "WardgateMiddleware", "authenticate", "authenticated", "render",
           "require_roles", "require_scopes"]
