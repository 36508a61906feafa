#!/usr/bin/env bash
# Install the Debian libraries Qt's wheels load, only those missing. Usage: ensure_debian_libs.sh [--x11]
# offscreen (tests, CI) needs the first list; a real window or Xvfb screenshots need the second too.
set -euo pipefail
pkgs=(libgl1 libegl1 libx11-6 libxkbcommon0 libfontconfig1 libglib2.0-0 libdbus-1-3 fonts-dejavu-core)
if [[ "${1:-}" == "--x11" ]]; then
  pkgs+=(libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 libxcb-render0
         libxcb-shape0 libxcb-util1 libxcb-xkb1 libxkbcommon-x11-0 xvfb xauth)
fi
command -v dpkg-query >/dev/null || { echo "not a Debian system: install the Qt libraries yourself: ${pkgs[*]}"; exit 0; }
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
echo "Installing Debian packages Qt needs: ${missing[*]}"
sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq || true
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
