"""`wardgate check-config FILE` for both kinds of file: gateway and issuer.

The gateway's command validates gateway files; an issuer file is recognised by its top-level
keys and validated with the issuer's own loader. Anything else goes to the gateway check, whose
messages say what is missing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
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


def extend_check_config(sub: argparse._SubParsersAction) -> None:
    """Make the registered `check-config` recognise issuer files (gateway ones are unchanged)."""
    parser = sub.choices.get("check-config")
    if parser is None:
        return
    gateway_check: Callable[[argparse.Namespace], Any] | None = parser.get_default("func")
    if gateway_check is None:
        return

    def check(args: argparse.Namespace) -> int:
        if file_kind(args.file) == "issuer":
            return check_issuer(args.file)
        return int(gateway_check(args) or 0)

    text = "validate a gateway or issuer config file (the kind is detected)"
    parser.description = text
    parser.set_defaults(func=check)
    # the one-line summary in `wardgate --help` lives on the subparsers' pseudo-actions
    for action in getattr(sub, "_choices_actions", []):
        if getattr(action, "dest", None) == "check-config":
            action.help = text
