"""The requirement tree, compiled once per route into plain closures. Sans-I/O.

A compiled check takes (identity or None, path params) and returns None when the request may
pass, or a tuple of missing scopes (possibly empty) when it is denied. Every field of a node must
hold (AND); `any` needs one child, `all` needs every child. With no token (identity None) a node
passes only if it says `allow_missing: true` or its children allow it: an empty node `{}` still
needs a valid token, so the default is deny.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from wardgate.auth.identity import Identity, claim_at, is_missing
from wardgate.config.auth import ClaimRule, Requirement

Denial = tuple[str, ...]
Check = Callable[[Identity | None, dict[str, str]], Denial | None]
_DENY: Denial = ()


def _same(a: Any, b: Any) -> bool:
    # JSON true is not 1: compare booleans by identity, numbers and strings by value and kind
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _as_param(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return None


def compile_rule(rule: ClaimRule) -> Callable[[dict[str, Any], dict[str, str]], bool]:
    path = tuple(rule.claim.split("."))
    op, arg = rule.operator()
    if op == "equals":
        return lambda c, p: _same(claim_at(c, path), arg)
    if op == "in":
        options = tuple(arg)
        return lambda c, p: any(_same(claim_at(c, path), o) for o in options)
    if op == "contains":
        # arrays only: substring matching on strings invites "admin" in "notadmin" mistakes
        return lambda c, p: (isinstance(v := claim_at(c, path), list)
                             and any(_same(e, arg) for e in v))
    if op == "regex":
        pattern = re.compile(arg)
        return lambda c, p: isinstance(v := claim_at(c, path), str) and bool(pattern.fullmatch(v))
    if op == "exists":
        want = bool(arg)
        return lambda c, p: (not is_missing(claim_at(c, path))) == want
    if op == "equals_param":
        name = arg
        return lambda c, p: (v := _as_param(claim_at(c, path))) is not None and p.get(name) == v
    if op == "contains_param":
        name = arg

        def contains_param(c: dict[str, Any], p: dict[str, str]) -> bool:
            v = claim_at(c, path)
            want = p.get(name)
            return isinstance(v, list) and want is not None and any(_as_param(e) == want for e in v)
        return contains_param
    raise ValueError(f"unknown claim operator {op!r}")


def current_actor(claims: dict[str, Any]) -> str | None:
    """RFC 8693 §4.1: the outermost `act.sub` acts now; nested ones acted before it."""
    act = claims.get("act")
    sub = act.get("sub") if isinstance(act, dict) else None
    return sub if isinstance(sub, str) else None


def compile_requirement(node: Requirement) -> Check:
    leaves: list[Check] = []
    if node.provider is not None:
        provider = node.provider
        leaves.append(lambda i, p: None if i.provider == provider else _DENY)  # type: ignore[union-attr]
    if node.scopes:
        need = frozenset(node.scopes)
        ordered = tuple(node.scopes)

        def scopes(i: Identity | None, p: dict[str, str]) -> Denial | None:
            have = i.scopes  # type: ignore[union-attr]
            if need <= have:
                return None
            return tuple(s for s in ordered if s not in have)  # RFC 6750 §3 scope attribute
        leaves.append(scopes)
    if node.roles:
        roles = frozenset(node.roles)
        leaves.append(lambda i, p: None if roles <= i.roles else _DENY)  # type: ignore[union-attr]
    if node.actors:
        actors: frozenset[str | None] = frozenset(node.actors)
        leaves.append(lambda i, p: None if current_actor(i.claims) in actors  # type: ignore[union-attr]
                      else _DENY)
    for rule in node.claims:
        fn = compile_rule(rule)
        leaves.append(lambda i, p, fn=fn: None if fn(i.claims, p) else _DENY)  # type: ignore[misc,union-attr]
    any_of = [compile_requirement(c) for c in node.any or []]
    all_of = [compile_requirement(c) for c in node.all or []]
    allow_missing = node.allow_missing

    def check(ident: Identity | None, params: dict[str, str]) -> Denial | None:
        if ident is None:
            if allow_missing:
                return None
            if leaves or not (any_of or all_of):
                return _DENY
        else:
            for leaf in leaves:
                denied = leaf(ident, params)
                if denied is not None:
                    return denied
        if any_of:
            first: Denial | None = None
            for child in any_of:
                denied = child(ident, params)
                if denied is None:
                    break
                if first is None:
                    first = denied
            else:
                return first
        missing: list[str] = []
        failed = False
        for child in all_of:
            denied = child(ident, params)
            if denied is not None:
                failed = True
                missing.extend(s for s in denied if s not in missing)
        return tuple(missing) if failed else None

    return check
