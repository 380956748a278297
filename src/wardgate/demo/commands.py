"""`wardgate demo`: the subcommand's options. Running the stack (runner.py) imports the issuer
and HTTP clients, so it is loaded only when the command runs: `wardgate run` and the other
commands never pay for it."""

from __future__ import annotations

import argparse

from wardgate.demo.settings import Ports


def _run(args: argparse.Namespace) -> int:
    from wardgate.demo.runner import run_demo

    return run_demo(args)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the issuer, the gateway and two example services",
                       description="Start the demo stack on 127.0.0.1 (Ctrl-C stops it).")
    p.add_argument("--dir", default=".wardgate",
                   help="state directory: configs, issuer database, keys, logs (.wardgate)")
    p.add_argument("--examples", help="directory with gateway.yaml and issuer.yaml "
                   "(default: the checkout's examples/)")
    for name, port in Ports().items():
        p.add_argument(f"--{name}-port", type=int, default=None, metavar="PORT",
                       help=f"default {port}, or WARDGATE_DEMO_{name.upper()}_PORT")
    p.set_defaults(func=_run)
