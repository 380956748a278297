"""CLI: `wardgate revoke --config ISSUER.yaml --jti ID [--exp T] | --sub SUB | --client ID`.

Writes one event to the issuer's database; the running issuer serves it to polling gateways
and relays it to Redis (within `revocations.relay_interval_s`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from wardgate.config.loader import ConfigError


def _revoke(args: argparse.Namespace) -> int:
    from wardgate.config.issuer import load_issuer
    from wardgate.issuer import admin

    try:
        cfg = load_issuer(args.config)
        ev = asyncio.run(admin.revoke(cfg, jti=args.jti, exp=args.exp, sub=args.sub,
                                      client_id=args.client))
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(ev.to_wire(), sort_keys=True))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("revoke", help="revoke a token, a subject's or a client's tokens")
    p.add_argument("--config", "-c", required=True, help="the issuer's config file")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--jti", help="one token, by its jti (one that starts with - as --jti=VALUE)")
    g.add_argument("--sub", help="every token of this subject issued before now")
    g.add_argument("--client", help="every token of this client_id issued before now")
    p.add_argument("--exp", type=int, help="with --jti: the token's exp (else the longest "
                                           "token lifetime from now)")
    p.set_defaults(func=_revoke)
