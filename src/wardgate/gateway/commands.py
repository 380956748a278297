"""CLI: `wardgate run` and `wardgate check-config`."""

from __future__ import annotations

import argparse

from wardgate.config.check import check_file


def _check_config(args: argparse.Namespace) -> int:
    return check_file(args.file)


def _run(args: argparse.Namespace) -> int:
    from wardgate.gateway.supervisor import run_gateway

    return run_gateway(args.config)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-config",
                       help="validate a gateway or issuer config file (the kind is detected)")
    p.add_argument("file")
    p.set_defaults(func=_check_config)
    p = sub.add_parser("run", help="run the gateway")
    p.add_argument("--config", "-c", required=True)
    p.set_defaults(func=_run)
