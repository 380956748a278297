"""What pyproject.toml cannot say: the compiled parts, both optional.

- the data plane's hot modules (src/wardgate/_native.py, COMPILED) compiled by mypyc;
- the metrics closure in C (src/wardgate/observe/_finish.c).

Without a compiler and Python's headers the install goes on and the same modules run from
their Python source (the C closure's fallback is in observe/http.py). WARDGATE_NO_MYPYC=1
builds without mypyc (the C closure is still built).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent


def _compiled_modules() -> list[str]:
    tree = ast.parse((HERE / "src" / "wardgate" / "_native.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COMPILED":
            return list(ast.literal_eval(node.value))
    raise SystemExit("src/wardgate/_native.py has no COMPILED")


def ext_modules() -> list[Extension]:
    exts = [Extension("wardgate.observe._finish", ["src/wardgate/observe/_finish.c"],
                      optional=True)]
    if os.environ.get("WARDGATE_NO_MYPYC"):
        return exts
    from mypyc.build import mypycify

    paths = ["src/" + m.replace(".", "/") + ".py" for m in _compiled_modules()]
    # mypy's own settings for the build: the build environment has mypy and nothing else
    # (no pydantic plugin, no httptools), so imports it cannot see are Any, and errors in
    # modules that are not compiled are not the build's business (`make lint` checks them).
    options = ["--config-file", str(HERE / "mypyc.ini")]
    native = mypycify(options + paths, group_name="wardgate_native", opt_level="3")
    for ext in native:
        ext.optional = True  # no compiler: install the Python source, which is the same code
    return exts + native


setup(ext_modules=ext_modules())
