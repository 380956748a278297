"""CLI: `wardgate issuer`, `wardgate users ...`, `wardgate clients ...`, `wardgate keys ...`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from typing import Any

from wardgate.config.loader import ConfigError


def _cfg(args: argparse.Namespace) -> Any:
    from wardgate.config.issuer import load_issuer

    return load_issuer(args.config)


def _guard(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args) or 0)
        except ConfigError as exc:
            for issue in exc.issues:
                print(issue, file=sys.stderr)
            return 2
        except (ValueError, LookupError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return run


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat: ") != first:
        raise ValueError("passwords differ")
    return first


def _serve(args: argparse.Namespace) -> int:
    from wardgate.issuer.server import serve

    serve(_cfg(args), log_level=args.log_level)
    return 0


def _users(args: argparse.Namespace) -> int:
    from wardgate.issuer import admin

    cfg = _cfg(args)
    if args.action == "add":
        uid = asyncio.run(admin.add_user(cfg, args.username, _read_password(args), args.role))
        print(f"user {args.username} added (id {uid})")
    elif args.action == "passwd":
        asyncio.run(admin.set_password(cfg, args.username, _read_password(args)))
        print(f"password of {args.username} changed")
    elif args.action == "roles":
        asyncio.run(admin.set_roles(cfg, args.username, args.role))
        print(f"roles of {args.username}: {', '.join(sorted(set(args.role))) or '(none)'}")
    elif args.action == "disable":
        asyncio.run(admin.set_disabled(cfg, args.username, not args.enable))
        print(f"user {args.username} {'enabled' if args.enable else 'disabled'}")
    else:
        for u in asyncio.run(admin.list_users(cfg)):
            state = "disabled" if u.disabled else "active"
            print(f"{u.id}\t{u.username}\t{state}\troles={','.join(u.roles)}")
    return 0


def _clients(args: argparse.Namespace) -> int:
    from wardgate.issuer import admin

    cfg = _cfg(args)
    if args.action == "add":
        jwks = None
        if args.jwks:
            with open(args.jwks, encoding="utf-8") as fh:
                jwks = json.load(fh)
        secret = asyncio.run(admin.add_client(
            cfg, args.client_id, name=args.name, auth_method=args.auth_method,
            grant_types=args.grant or None, scopes=args.scope, audiences=args.audience,
            redirect_uris=args.redirect_uri, jwks=jwks, dpop_bound=args.dpop))
        print(f"client {args.client_id} added")
        if secret:
            print(f"client_secret: {secret}  (shown once; store it now)")
    else:
        for c in asyncio.run(admin.list_clients(cfg)):
            print(f"{c.client_id}\t{c.auth_method}\tgrants={','.join(c.grant_types)}\t"
                  f"scopes={' '.join(c.scopes)}\taud={','.join(c.audiences)}"
                  + ("\tdpop" if c.dpop_bound else ""))
    return 0


def _keys(args: argparse.Namespace) -> int:
    from wardgate.issuer import admin

    cfg = _cfg(args)
    if args.action == "generate":
        row = asyncio.run(admin.generate_key(cfg, args.algorithm))
        print(f"key {row.kid} ({row.alg}) signs now; private key in {row.private_path}")
    elif args.action == "rotate":
        row = asyncio.run(admin.rotate_key(cfg, args.algorithm, args.lead))
        print(f"key {row.kid} ({row.alg}) published; signs from "
              f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(row.activate_at))}")
    else:
        now = int(time.time())
        for k in asyncio.run(admin.list_keys(cfg)):
            print(f"{k.kid}\t{k.alg}\t{k.state(now)}\tactivate_at={k.activate_at}\t"
                  f"retire_at={k.retire_at}\tremove_at={k.remove_at}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("issuer", help="run the token issuer")
    p.add_argument("--config", "-c", required=True)
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=_guard(_serve))

    p = sub.add_parser("users", help="manage issuer users")
    us = p.add_subparsers(dest="action", required=True)
    for name in ("add", "passwd"):
        q = us.add_parser(name)
        q.add_argument("username")
        q.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of stdin")
        if name == "add":
            q.add_argument("--role", action="append", default=[])
    q = us.add_parser("roles", help="replace a user's roles")
    q.add_argument("username")
    q.add_argument("--role", action="append", default=[])
    q = us.add_parser("disable")
    q.add_argument("username")
    q.add_argument("--enable", action="store_true", help="re-enable instead")
    us.add_parser("list")
    for q in us.choices.values():
        q.add_argument("--config", "-c", required=True)
    p.set_defaults(func=_guard(_users))

    p = sub.add_parser("clients", help="manage OAuth clients")
    cs = p.add_subparsers(dest="action", required=True)
    q = cs.add_parser("add")
    q.add_argument("client_id")
    q.add_argument("--name")
    q.add_argument("--auth-method", default="client_secret_basic",
                   choices=["none", "client_secret_basic", "client_secret_post",
                            "private_key_jwt"])
    q.add_argument("--grant", action="append", default=[],
                   choices=["authorization_code", "refresh_token", "client_credentials"])
    q.add_argument("--scope", action="append", default=[])
    q.add_argument("--audience", action="append", default=[])
    q.add_argument("--redirect-uri", action="append", default=[])
    q.add_argument("--jwks", help="file with the client's public JWKS (private_key_jwt)")
    q.add_argument("--dpop", action="store_true",
                   help="the client must send DPoP proofs (RFC 9449 dpop_bound_access_tokens)")
    cs.add_parser("list")
    for q in cs.choices.values():
        q.add_argument("--config", "-c", required=True)
    p.set_defaults(func=_guard(_clients))

    p = sub.add_parser("keys", help="manage issuer signing keys")
    ks = p.add_subparsers(dest="action", required=True)
    for name in ("generate", "rotate"):
        q = ks.add_parser(name)
        q.add_argument("--algorithm", choices=["RS256", "ES256", "EdDSA"])
        if name == "rotate":
            q.add_argument("--lead", type=int, help="seconds before the new key signs")
    ks.add_parser("list")
    for q in ks.choices.values():
        q.add_argument("--config", "-c", required=True)
    p.set_defaults(func=_guard(_keys))
