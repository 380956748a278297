"""The data plane's modules that setup.py compiles with mypyc, and the way back to their source.

The compiled modules are the same source, type-checked and built into C (a native class
keeps its attributes in a C struct; calls between compiled functions skip the interpreter).
They are all or nothing: a compiled module checks that the classes it is given are its
compiled peers, so one module from source among compiled ones would fail. Their source runs
instead of the built modules when

- WARDGATE_PURE_PYTHON is set (the tests run part of the suite so, see tests/packaging), or
- in a source checkout (editable install), any of them was changed after the build, so an
  edit takes effect at once instead of being shadowed by a stale build (`make` rebuilds).

An install without a compiler has no built modules and always runs the source.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

COMPILED = (
    "wardgate.gateway.request",
    "wardgate.gateway.target",
    "wardgate.gateway.head",
    "wardgate.gateway.headers",
    "wardgate.gateway.output",
    "wardgate.gateway.client_flow",
    "wardgate.gateway.protocol",
    "wardgate.gateway.pipeline",
    "wardgate.gateway.proxy",
    "wardgate.gateway.routing",
    "wardgate.gateway.upstream.connection",
    "wardgate.gateway.upstream.cluster",
    "wardgate.gateway.upstream.balancer",
    "wardgate.gateway.upstream.health",
    "wardgate.gateway.upstream.breaker",
    # the JWT step (a new token each time: parse, checks, identity; a refusal's challenge)
    "wardgate.auth.route",
    "wardgate.auth.verifier",
    "wardgate.auth.cache",
    "wardgate.auth.extract",
    "wardgate.auth.compact",
    "wardgate.auth.identity",
    "wardgate.auth.policy",
    "wardgate.auth.keys",
)
# The shared library mypyc builds for the group (setup.py's group_name), beside the package.
GROUP = "wardgate_native__mypyc"


class _SourceFinder:
    """Finds the compiled modules' .py files ahead of the built ones."""

    def find_spec(self, name: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if name not in COMPILED or not path:
            return None
        leaf = name.rpartition(".")[2] + ".py"
        for entry in path:
            source = Path(entry) / leaf
            if source.is_file():
                return importlib.util.spec_from_file_location(name, source)
        return None


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def built() -> bool:
    """True when the compiled modules exist beside the package (the build had a compiler)."""
    return any(_package_dir().parent.glob(GROUP + ".*"))


def stale_in_checkout(pkg: Path | None = None) -> bool:
    """In a source checkout (`pkg`: the package directory, this one by default): a compiled
    module's source is newer than the build."""
    pkg = pkg or _package_dir()
    if pkg.parent.name != "src" or not (pkg.parent.parent / "pyproject.toml").is_file():
        return False  # installed: the files' times say nothing
    libs = list(pkg.parent.glob(GROUP + ".*"))
    if not libs:
        return False
    built_at = min(lib.stat().st_mtime for lib in libs)
    for name in COMPILED:
        source = pkg.parent.joinpath(*name.split(".")).with_suffix(".py")
        if source.stat().st_mtime > built_at:
            return True
    return False


def install() -> None:
    """Called once, by wardgate/__init__.py, before any compiled module can be imported."""
    if not built():
        return  # nothing to step around
    if os.environ.get("WARDGATE_PURE_PYTHON"):
        sys.meta_path.insert(0, _SourceFinder())  # type: ignore[arg-type]  # the finder protocol
    elif stale_in_checkout():
        sys.meta_path.insert(0, _SourceFinder())  # type: ignore[arg-type]
        print("wardgate: running the data plane from source: the compiled modules are older "
              "than their source (make rebuilds them)", file=sys.stderr)


def running_compiled() -> bool:
    """True when the data plane's modules in use are the compiled ones."""
    from wardgate.gateway import protocol

    return not (protocol.__file__ or "").endswith(".py")
