#!/usr/bin/env bash
# Print the interpreter `make` builds .venv with (override: make PY=/path/to/python3).
#
# The distribution's python3 comes first: Debian builds it with PGO and LTO and links libpython
# statically, while a plain `./configure` build (pyenv's default, for one) has neither. The data
# plane spends most of its time in the interpreter: on the bench machine Debian's 3.11 runs
# bench/hotpath.py's plain request in ~9.1 us against ~10.3 us for pyenv's
# 3.11 (docs/benchmarks.md). Any CPython >= 3.11 that can make a venv is accepted.
set -euo pipefail
usable() {
  "$1" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}
for candidate in /usr/bin/python3 /usr/local/bin/python3 "$(command -v python3 || true)"; do
  if [[ -n $candidate && -x $candidate ]] && usable "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done
echo "no CPython >= 3.11 with venv and ensurepip found; install python3-venv or set PY=" >&2
exit 1
