#!/usr/bin/env bash
# Builds health_score and installs it into a PostgreSQL major's tree (15, Debian's, by default):
# the library and the default version's install script (`cargo pgrx install`, which also copies
# the upgrade scripts sql/health_score--<from>--<to>.sql), and the frozen install scripts of
# the earlier versions (sql/install/), which `CREATE EXTENSION health_score VERSION '<old>'`,
# the upgrade test and the restore of an old dump (docs/upgrading.md) need.
#   scripts/install.sh [MAJOR] [--release]
# Run scripts/setup.sh first (the test, demo and benchmark scripts do).
set -euo pipefail
cd "$(dirname "$0")/.."
major=15; profile=()
for arg in "$@"; do
  case "$arg" in
    --release) profile=(--release) ;;
    1[5-8]) major=$arg ;;
    *) echo "usage: $0 [15|16|17|18] [--release]" >&2; exit 2 ;;
  esac
done
export PGRX_HOME=${PGRX_HOME:-/var/lib/pgrx} USER=${USER:-$(id -un)} PATH="$HOME/.cargo/bin:$PATH"
pg_config="$(bash scripts/pg_bindir.sh "$major")/pg_config"
log=target/install-pg$major.log
mkdir -p target
if ! cargo pgrx install "${profile[@]}" --pg-config "$pg_config" >"$log" 2>&1; then
  cat "$log"; exit 1
fi
extdir="$("$pg_config" --sharedir)/extension"
default_version=$(bash scripts/version.sh)
for frozen in sql/install/health_score--*.sql; do
  # the default version's script is the one the build generates (a test checks it equals
  # the frozen copy once that exists)
  [ "$(basename "$frozen")" = "health_score--$default_version.sql" ] && continue
  install -m 644 "$frozen" "$extdir/"
done
