#!/usr/bin/env bash
# Installs the Debian packages named that are not installed yet (one `apt-get update` first,
# only when some are missing), quietly, as root or through sudo.
#   scripts/apt_install.sh WHO PACKAGE...     WHO prefixes the one line it prints
set -euo pipefail
who=$1; shift
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
printf '== %s: apt-get install %s\n' "$who" "${missing[*]}"
$SUDO apt-get update -qq || true
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
