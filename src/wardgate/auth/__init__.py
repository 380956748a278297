"""JWT authentication and authorization at the edge (reference: docs/auth.md).

    registry = ProviderRegistry.from_config(cfg.providers)
    await registry.start()                      # loads keys; background refresh
    route_auth = compile_route_auth(route, registry)   # once per route; None for `auth: none`
    await route_auth.authenticate(req)          # per request; raises wardgate.errors.*
    route_auth.forward(req)                     # identity headers for the upstream
    await registry.stop()

Modules: compact (strict JWS parsing), keys (import, key ring), verifier (one provider's rules),
cache (verified tokens), jwks (refresh policy), sources (key loading, the only I/O), extract
(token sources), policy (requirement tree), identity (req.identity and upstream headers),
route (the per-route filter), commands (`wardgate token inspect`).
"""

from wardgate.auth.identity import Identity
from wardgate.auth.registry import ProviderRegistry, RevocationCheck
from wardgate.auth.route import RouteAuth, compile_route_auth
from wardgate.auth.sources import KeyLoadError

__all__ = ["Identity", "KeyLoadError", "ProviderRegistry", "RevocationCheck", "RouteAuth",
           "compile_route_auth"]
