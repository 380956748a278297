"""The `wardgate` command line. Each feature area registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute subcommands; each exposes register(subparsers).
_COMMAND_MODULES = (
    "wardgate.gateway.commands",
    "wardgate.issuer.commands",
    "wardgate.auth.commands",
    "wardgate.demo.commands",
    "wardgate.admin.commands",
    "wardgate.revoke.commands",
    "wardgate.dpop.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wardgate", description="API gateway with JWT auth at the edge")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in _COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
