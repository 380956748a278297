#!/usr/bin/env bash
# Install Debian packages only when missing. Args: PACKAGE:PROBE where PROBE is a command
# on PATH or an absolute path that exists once the package is installed.
set -euo pipefail
missing=()
for spec in "$@"; do
  pkg=${spec%%:*}; probe=${spec#*:}
  if [[ $probe == /* ]]; then [[ -e $probe ]] && continue
  else command -v "$probe" >/dev/null 2>&1 && continue; fi
  missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "installing system packages: ${missing[*]}"
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
