"""The data plane compiled by mypyc (src/wardgate/_native.py, setup.py): in use in this
install, and its Python source used instead when asked or when the build is stale."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wardgate import _native

REPO = Path(__file__).resolve().parents[2]
PURE = bool(os.environ.get("WARDGATE_PURE_PYTHON"))


def module_files(env: dict[str, str]) -> list[str]:
    code = ("import importlib, wardgate._native as n; "
            "print('\\n'.join(importlib.import_module(m).__file__ for m in n.COMPILED))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env, cwd="/")
    return out.stdout.split()


def test_this_install_runs_the_compiled_modules_unless_asked_not_to() -> None:
    """make sysdeps brings a compiler, so the dev install is built; the pure pass of make
    test (WARDGATE_PURE_PYTHON=1) runs the source."""
    for name in _native.COMPILED:
        file = importlib.import_module(name).__file__ or ""
        assert file.endswith(".py") if PURE else file.endswith(".so"), file
    assert _native.running_compiled() is not PURE


def test_wardgate_pure_python_loads_every_compiled_module_from_source() -> None:
    env = {k: v for k, v in os.environ.items() if k != "WARDGATE_PURE_PYTHON"}
    built = module_files(env)
    pure = module_files({**env, "WARDGATE_PURE_PYTHON": "1"})
    assert len(pure) == len(_native.COMPILED)
    assert all(f.endswith(".py") for f in pure), pure
    if not PURE:
        assert all(f.endswith(".so") for f in built), built
    # the same modules, from the same directories
    assert [Path(f).parent for f in pure] == [Path(f).parent for f in built]


def test_compiled_classes_derive_only_from_wardgate_or_stdlib_classes() -> None:
    """The build runs without the third-party packages, where mypyc compiled a subclass of
    joserfc's JWSRegistry as a native class on a base it did not match, and the first instance
    corrupted memory (CI segfaulted at import). Such classes live in uncompiled modules
    (auth/registries.py); mypyc.ini's disallow_subclassing_any refuses them at build time."""
    known = {"wardgate", *sys.stdlib_module_names}  # what the build's mypy sees
    foreign = []
    for name in _native.COMPILED:
        module = importlib.import_module(name)
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != name:
                continue
            foreign += [f"{cls.__qualname__}({base.__module__}.{base.__qualname__})"
                        for base in cls.__mro__[1:]
                        if base.__module__.split(".")[0] not in known]
    assert foreign == []


def test_mypyc_settings_refuse_a_subclass_of_an_unseen_class() -> None:
    """What the isolated build sees: no site-packages. A compiled class with a joserfc base
    must be a build error, not a build."""
    bad = REPO / "src" / "wardgate" / "auth" / "registries.py"
    out = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(REPO / "mypyc.ini"),
                          "--no-site-packages", "--no-incremental", str(bad)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 1, out.stdout
    assert 'Class cannot subclass "JWSRegistry"' in out.stdout, out.stdout


def fake_checkout(tmp_path: Path, built_at: float, source_at: float) -> Path:
    pkg = tmp_path / "src" / "wardgate"
    (tmp_path / "pyproject.toml").write_text("")
    lib = tmp_path / "src" / (_native.GROUP + ".cpython-311-x86_64-linux-gnu.so")
    for name in _native.COMPILED:
        source = (tmp_path / "src").joinpath(*name.split(".")).with_suffix(".py")
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("")
        os.utime(source, (source_at, source_at))
    lib.write_bytes(b"")
    os.utime(lib, (built_at, built_at))
    return pkg


def test_an_edit_after_the_build_runs_the_source_in_a_checkout(tmp_path: Path) -> None:
    pkg = fake_checkout(tmp_path, built_at=2_000_000, source_at=1_000_000)
    assert not _native.stale_in_checkout(pkg)
    edited = pkg / "gateway" / "proxy.py"
    os.utime(edited, (3_000_000, 3_000_000))
    assert _native.stale_in_checkout(pkg)


def test_an_installed_package_never_judges_by_file_times(tmp_path: Path) -> None:
    pkg = fake_checkout(tmp_path, built_at=1_000_000, source_at=2_000_000)
    assert _native.stale_in_checkout(pkg)
    (tmp_path / "pyproject.toml").unlink()  # site-packages: no project file above
    assert not _native.stale_in_checkout(pkg)


def test_this_checkout_is_not_stale() -> None:
    """make rebuilds when a compiled module changes (the Makefile's install stamp)."""
    if PURE:
        pytest.skip("the pure pass runs the source on purpose")
    assert not _native.stale_in_checkout()


def test_the_finder_serves_only_the_compiled_modules() -> None:
    finder = _native._SourceFinder()
    gateway = [str(REPO / "src" / "wardgate" / "gateway")]
    spec = finder.find_spec("wardgate.gateway.proxy", gateway)
    assert spec is not None and spec.origin == str(REPO / "src/wardgate/gateway/proxy.py")
    assert finder.find_spec("wardgate.gateway.worker", gateway) is None  # not compiled
    assert finder.find_spec("wardgate.gateway.proxy", None) is None
