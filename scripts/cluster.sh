#!/usr/bin/env bash
# A throwaway PostgreSQL cluster (major 15, or $HS_PG_MAJOR) in a project-local directory, on
# its own port, listening on a Unix socket in that directory (and on 127.0.0.1). When run as
# root, the server runs as the `postgres` OS user (PostgreSQL refuses root) and root gets a
# superuser role of its own.
#   scripts/cluster.sh start DIR PORT [postgresql.conf lines...]
#   scripts/cluster.sh stop DIR
#   scripts/cluster.sh psql DIR PORT [psql args...]
set -euo pipefail
BIN=$(bash "$(dirname "$0")/pg_bindir.sh" "${HS_PG_MAJOR:-15}")
cmd=$1; dir=$(realpath -m "$2"); shift 2

as_server() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$cmd" in
  start)
    port=$1; shift
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      mkdir -p "$dir"
      [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
      as_server "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust --locale=C.UTF-8 -E UTF8 >/dev/null
      {
        echo "port = $port"
        echo "unix_socket_directories = '$dir'"
        echo "listen_addresses = '127.0.0.1'"
        for line in "$@"; do echo "$line"; done
      } >> "$dir/data/postgresql.conf"
    fi
    if ! as_server "$BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_server "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
    fi
    # the caller's OS user gets a superuser role so that psql works without -U
    me=$(id -un)
    "$BIN/psql" -h "$dir" -p "$port" -U postgres -d postgres -qAtX -v ON_ERROR_STOP=1 \
      -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$me') THEN CREATE ROLE \"$me\" SUPERUSER LOGIN; END IF; END \$\$" >/dev/null
    ;;
  stop)
    if [ -f "$dir/data/PG_VERSION" ]; then
      as_server "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  psql)
    port=$1; shift
    exec "$BIN/psql" -h "$dir" -p "$port" -X "$@"
    ;;
  *) echo "usage: $0 start|stop|psql DIR [PORT] ..." >&2; exit 2 ;;
esac
