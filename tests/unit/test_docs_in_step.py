"""The docs say what the code does: every configuration key the models accept is documented,
every key a reference table documents exists, and every CLI command and option is in the CLI
reference (docs/operations.md). A failure names the missing key or option.

Conventions the test relies on (stated at the top of docs/configuration.md):
- a key is documented when it appears in backticks in docs/configuration.md, docs/auth.md or
  docs/issuer.md, alone (`burst`) or with its parents (`match.path`, `routes[].rate_limits`),
  or as a key of a YAML example there;
- reference tables start with the header `| key | default | ...`; their first cell holds the
  documented keys, in backticks;
- the CLI reference is the table of docs/operations.md whose rows start with `| \\`wardgate `.
"""

from __future__ import annotations

import argparse
import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from wardgate.cli import build_parser
from wardgate.config.gateway import GatewayConfig
from wardgate.config.issuer import IssuerConfig

DOCS = Path(__file__).resolve().parents[2] / "docs"
CONFIG_DOCS = ("configuration.md", "auth.md", "issuer.md")
_TICKED = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_YAML_KEY = re.compile(r"^[ \t]*(?:- )?\{?([A-Za-z_][A-Za-z0-9_]*):", re.M)


def _models(tp: object) -> list[type[BaseModel]]:
    """Pydantic models inside a field's annotation (lists, unions, dicts of them)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(tp):
        out += _models(arg)
    if isinstance(tp, types.UnionType):
        for arg in tp.__args__:
            out += _models(arg)
    return out


def field_paths(model: type[BaseModel], prefix: str = "", seen: frozenset = frozenset()) -> set[str]:
    paths: set[str] = set()
    for name, info in model.model_fields.items():
        key = info.alias or name
        path = prefix + key
        paths.add(path)
        for sub in _models(info.annotation):
            if sub not in seen:
                paths |= field_paths(sub, path + ".", seen | {model})
    return paths


def _doc_tokens() -> set[str]:
    tokens: set[str] = set()
    for name in CONFIG_DOCS:
        text = (DOCS / name).read_text()
        for block in _FENCE.findall(text):  # keys shown in YAML examples count as documented
            tokens.update(_YAML_KEY.findall(block))
        for tok in _TICKED.findall(_FENCE.sub("", text)):
            tok = tok.strip()
            tokens.add(tok)
            if tok.lstrip("[").startswith("{"):  # `{cert: FILE, key: FILE}`: cert and key
                tokens.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*[:,}]", tok))
            tokens.add(tok.split(":", 1)[0].strip())  # `burst: 20` documents `burst`
    return tokens


def _documented(path: str, tokens: set[str], children: set[str]) -> bool:
    if path in children:  # a section is documented by its documented keys (`tokens.access_ttl_s`)
        return True
    parts = path.split(".")
    for i in range(len(parts)):
        tail = ".".join(parts[i:])
        if tail in tokens or tail.replace(".", "[].") in tokens:
            return True
        if any(t.replace("[]", "").endswith(tail) and t.replace("[]", "").endswith("." + parts[-1])
               for t in tokens if "." in t):
            return True
    return False


def test_every_configuration_key_is_documented() -> None:
    tokens = _doc_tokens()
    paths = field_paths(GatewayConfig) | field_paths(IssuerConfig)
    documented = {p for p in paths if _documented(p, tokens, set())}
    parents = {p.rsplit(".", 1)[0] for p in documented if "." in p}
    missing = sorted(p for p in paths if not _documented(p, tokens, parents))
    assert not missing, f"config keys missing from docs/{{{','.join(CONFIG_DOCS)}}}: {missing}"


def _table_keys() -> list[tuple[str, str]]:
    out = []
    for name in CONFIG_DOCS:
        in_table = False
        for line in (DOCS / name).read_text().splitlines():
            if line.startswith("| key | default |"):
                in_table = True
                continue
            if in_table and line.startswith("|"):
                first = line.split("|")[1]
                out += [(name, k) for k in _TICKED.findall(first)]
            elif in_table:
                in_table = False
    return out


def test_every_documented_key_exists() -> None:
    leaves = {p.rsplit(".", 1)[-1] for p in field_paths(GatewayConfig) | field_paths(IssuerConfig)}
    unknown = [f"{doc}: `{key}`" for doc, key in _table_keys()
               if key.replace("[]", "").rsplit(".", 1)[-1].split(":", 1)[0] not in leaves]
    assert not unknown, f"documented keys that no config model has: {unknown}"


def _commands(parser: argparse.ArgumentParser, path: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    opts = {o for a in parser._actions for o in a.option_strings
            if o.startswith("--") and o != "--help"}
    if not subs:
        out[" ".join(path)] = opts
    for s in subs:
        for name, sp in s.choices.items():
            out |= _commands(sp, [*path, name])
    return out


def _cli_reference() -> dict[str, str]:
    rows = {}
    for line in (DOCS / "operations.md").read_text().splitlines():
        m = re.match(r"^\| `(wardgate [a-z -]+?)(?: [A-Z\[<].*?)?` \|(.*)$", line)
        if m:
            rows[m.group(1).strip()] = m.group(2)
    return rows


def test_every_cli_command_and_option_is_documented() -> None:
    real = _commands(build_parser(), ["wardgate"])
    rows = _cli_reference()
    missing_cmds = sorted(set(real) - set(rows))
    assert not missing_cmds, f"commands missing from the CLI reference in operations.md: {missing_cmds}"
    stale = sorted(set(rows) - set(real))
    assert not stale, f"the CLI reference documents commands that do not exist: {stale}"
    missing_opts = sorted(f"{cmd} {opt}" for cmd, opts in real.items() for opt in opts
                          if f"`{opt}" not in rows[cmd])
    assert not missing_opts, f"options missing from the CLI reference: {missing_opts}"
