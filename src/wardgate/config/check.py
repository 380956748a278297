"""`wardgate check-config FILE` for both kinds of file: gateway and issuer.

The gateway's command validates gateway files; an issuer file is recognised by its top-level
keys and validated with the issuer's own loader. Anything else goes to the gateway check, whose
messages say what is missing.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from wardgate.config.loader import ConfigError

_GATEWAY_KEYS = frozenset({"routes", "upstreams", "providers", "workers", "admin"})
_ISSUER_KEYS = frozenset({"issuer", "database_url", "keys", "tokens", "password_hash", "roles",
                          "throttle", "browser"})


def file_kind(path: str) -> str:
    """'issuer' or 'gateway' (the default, also for unreadable or odd files)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return "gateway"
    if not isinstance(data, dict):
        return "gateway"
    keys = set(data)
    if keys & _ISSUER_KEYS and not keys & _GATEWAY_KEYS:
        return "issuer"
    return "gateway"


def print_issues(exc: ConfigError, trailer: str) -> None:
    """Every problem on stderr, one per line (FILE:LINE: path: message), then a summary."""
    for issue in exc.issues:
        print(issue, file=sys.stderr)
    print(trailer, file=sys.stderr)


def config_warnings(cfg: Any) -> list[str]:
    """Things in a valid gateway file that will not do what its author likely expects."""
    out = []
    if cfg.admin_enabled and _admin_token_missing(cfg):
        out.append("admin: no token configured (token_env/token_file): "
                   "/admin/* and the dashboard will refuse every request")
    authed = any(r.auth != "none" for r in cfg.routes)
    if cfg.state.urls() and not authed and not any(lim.scope == "global" for r in cfg.routes
                                                   for lim in r.rate_limits):
        out.append("state: no route has a scope: global rate limit or auth (DPoP replay "
                   "state), so nothing uses Redis")
    if cfg.workers > 1 and not cfg.state.urls() and any(
            r.auth != "none" and r.auth.dpop is not None for r in cfg.routes):
        out.append("dpop: several workers without state.redis_url: each worker has its own "
                   "replay cache, so a proof replayed to another worker is accepted once there")
    tracing = cfg.tracing
    if tracing is not None and tracing.trust_inbound == "trusted_proxies" \
            and not cfg.trusted_proxies:
        out.append("tracing: trust_inbound is trusted_proxies but trusted_proxies is empty: "
                   "no inbound trace will be continued")
    if tracing is not None and tracing.exporting and tracing.ratio == 0.0:
        out.append("tracing: sample_ratio 0 with an otlp_endpoint: only traces continued "
                   "from sampled callers are exported")
    return out


def _admin_token_missing(cfg: Any) -> bool:
    try:
        return cfg.admin.token() is None
    except OSError:
        return True


def check_file(path: str) -> int:
    """Validate a config file of either kind; print every problem; 0 when valid."""
    from wardgate.config import load_gateway
    from wardgate.config.issuer import load_issuer

    try:
        if file_kind(path) == "issuer":
            icfg = load_issuer(path)
            print(f"{path}: OK (issuer {icfg.issuer}, {len(icfg.roles)} roles, "
                  f"keys {icfg.keys.algorithm})")
        else:
            gcfg = load_gateway(path)
            print(f"{path}: OK ({len(gcfg.routes)} routes, {len(gcfg.upstreams)} upstreams, "
                  f"{len(gcfg.providers)} providers)")
            for warning in config_warnings(gcfg):
                print(f"{path}: warning: {warning}", file=sys.stderr)
    except ConfigError as exc:
        print_issues(exc, f"{path}: {len(exc.issues)} error(s)")
        return 1
    return 0
