"""`wardgate check-config FILE` for both kinds of file: gateway and issuer.

The gateway's command validates gateway files; an issuer file is recognised by its top-level
keys and validated with the issuer's own loader. Anything else goes to the gateway check, whose
messages say what is missing.
"""

from __future__ import annotations

import sys

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


def check_issuer(path: str) -> int:
    from wardgate.config.issuer import load_issuer

    try:
        cfg = load_issuer(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"{path}: {len(exc.issues)} error(s)", file=sys.stderr)
        return 1
    print(f"{path}: OK (issuer {cfg.issuer}, {len(cfg.roles)} roles, keys {cfg.keys.algorithm})")
    return 0


def check_gateway(path: str) -> int:
    from wardgate.config import load_gateway

    try:
        cfg = load_gateway(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"{path}: {len(exc.issues)} error(s)", file=sys.stderr)
        return 1
    print(f"{path}: OK ({len(cfg.routes)} routes, {len(cfg.upstreams)} upstreams, "
          f"{len(cfg.providers)} providers)")
    return 0


def check_file(path: str) -> int:
    """Validate a config file of either kind; print every problem; 0 when valid."""
    return check_issuer(path) if file_kind(path) == "issuer" else check_gateway(path)
