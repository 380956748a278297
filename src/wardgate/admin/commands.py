"""CLI: `wardgate status` (reads the admin listener; loads no web framework)."""

from __future__ import annotations

import argparse
import sys


def _status(args: argparse.Namespace) -> int:
    from wardgate.admin.status import StatusError, run_status

    try:
        code, text = run_status(args.config, args.admin, args.token_file, args.json,
                                args.interval, args.timeout)
    except StatusError as exc:
        print(f"wardgate status: {exc}", file=sys.stderr)
        return exc.code
    print(text)
    return code


def _non_negative(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    if not 0 <= v <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: must be between 0 and 3600")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="a running gateway's totals, latency, targets and key "
                       "sets, from its admin listener")
    p.add_argument("--config", "-c", help="gateway config: admin.listen and the token's source")
    p.add_argument("--admin", metavar="URL",
                   help="admin listener URL (default: from --config, else http://127.0.0.1:8081)")
    p.add_argument("--token-file", metavar="FILE", help="file holding the admin token "
                   "(default: the config's admin.token_env / token_file, else "
                   "$WARDGATE_ADMIN_TOKEN)")
    p.add_argument("--json", action="store_true", help="print the raw /admin/summary JSON")
    p.add_argument("--interval", type=_non_negative, default=0.0, metavar="SECONDS",
                   help="read twice this far apart and print the request rate (default 0)")
    p.add_argument("--timeout", type=_non_negative, default=5.0, metavar="SECONDS",
                   help="per request (default 5)")
    p.set_defaults(func=_status)
