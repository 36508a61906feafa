#!/usr/bin/env bash
# Print a Python >= 3.11 that can make a virtualenv; install Debian's python3-venv if that is what's missing.
set -euo pipefail
for py in python3.11 python3.12 python3.13 python3; do
  if command -v "$py" >/dev/null && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    if ! "$py" -c 'import ensurepip, venv' 2>/dev/null && command -v apt-get >/dev/null; then
      sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
      $sudo apt-get install -y -qq python3-venv >&2 || true
    fi
    command -v "$py"; exit 0
  fi
done
echo "DepthDesk needs Python 3.11 or newer (apt-get install python3 python3-venv)" >&2
exit 1
