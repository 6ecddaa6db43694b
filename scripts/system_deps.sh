#!/usr/bin/env bash
# Install the Debian packages listed in scripts/debian-packages.txt (or the list given as
# the first argument) that are missing.
set -euo pipefail
list="${1:-$(dirname "$0")/debian-packages.txt}"
mapfile -t wanted < <(sed -e 's/#.*//' -e '/^\s*$/d' "$list" | tr -d ' ')
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "missing Debian packages (tests needing them will skip): ${missing[*]}" >&2
  exit 0
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
