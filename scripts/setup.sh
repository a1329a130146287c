#!/usr/bin/env bash
# Installs everything health_score needs on Debian 12, idempotently (a re-run takes seconds):
# apt packages, cargo-pgrx (pinned to the pgrx in Cargo.toml), and a pg_config "shim" whose
# initdb/pg_ctl re-run themselves as the `postgres` OS user, because PostgreSQL refuses to run
# as root and `cargo pgrx test/regress` start their own servers.
# Nothing is downloaded from postgresql.org: pgrx uses Debian's PostgreSQL 15.
set -euo pipefail

PGRX_VERSION=0.18.1
PG_MAJOR=15
PGRX_TOOLS=${PGRX_TOOLS:-/opt/pgrx}
export PGRX_HOME=${PGRX_HOME:-/var/lib/pgrx}   # not under /root: the postgres user must reach it
PG_RUNAS=${PG_RUNAS:-postgres}
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
PG_BINDIR=/usr/lib/postgresql/$PG_MAJOR/bin
SHIM=$PGRX_TOOLS/pgshim-$PG_MAJOR
REAL_CARGO_PGRX=$PGRX_TOOLS/cargo-pgrx-$PGRX_VERSION/bin/cargo-pgrx
export PATH="$CARGO_HOME/bin:$PATH"
say() { printf '== setup: %s\n' "$*"; }

SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo

pkgs=(build-essential pkg-config libssl-dev libclang-dev
      "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" "postgresql-$PG_MAJOR-cron"
      postgresql-client-common
      libpostgresql-jdbc-java)   # the JDBC driver for the BI client check (tests/jdbc)
# a JDK for that check (Java 17, whose single-file launcher compiles the check on the fly)
command -v javac >/dev/null 2>&1 || pkgs+=(openjdk-17-jdk-headless)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
test -x "$PG_BINDIR/pg_config" || { echo "setup: no $PG_BINDIR/pg_config" >&2; exit 1; }

if ! "$REAL_CARGO_PGRX" pgrx --version 2>/dev/null | grep -qx "cargo-pgrx $PGRX_VERSION"; then
  say "cargo install cargo-pgrx $PGRX_VERSION (about 5 minutes)"
  # --locked: an unlocked resolve may pull crates that need a newer rustc.
  cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked --root "$PGRX_TOOLS/cargo-pgrx-$PGRX_VERSION"
fi

mkdir -p "$SHIM"
cat > "$SHIM/pg_config" <<EOF
#!/bin/sh
# The real pg_config, except --bindir points here so pgrx picks up the initdb/pg_ctl wrappers.
if [ "\$#" -eq 1 ] && [ "\$1" = "--bindir" ]; then echo "$SHIM"; exit 0; fi
exec "$PG_BINDIR/pg_config" "\$@"
EOF
cat > "$SHIM/initdb" <<EOF
#!/bin/sh
# initdb refuses root. As root: run it as $PG_RUNAS, give it the data dir and its parent (pgrx
# puts the socket there), and name the bootstrap superuser after the caller so root can log in.
REAL="$PG_BINDIR/initdb"
[ "\$(id -u)" -eq 0 ] || exec "\$REAL" "\$@"
D=\${PGDATA:-}; prev=
for a in "\$@"; do
  case "\$prev" in -D|--pgdata) D=\$a ;; esac
  case "\$a" in --pgdata=*) D=\${a#--pgdata=} ;; esac
  prev=\$a
done
if [ -n "\$D" ]; then mkdir -p "\$D"; chown "$PG_RUNAS:" "\$D" "\$(dirname "\$D")"; fi
exec runuser -u "$PG_RUNAS" -- "\$REAL" -U "\$(id -un)" "\$@"
EOF
cat > "$SHIM/pg_ctl" <<EOF
#!/bin/sh
# pg_ctl refuses root: as root, run it as $PG_RUNAS.
[ "\$(id -u)" -eq 0 ] && exec runuser -u "$PG_RUNAS" -- "$PG_BINDIR/pg_ctl" "\$@"
exec "$PG_BINDIR/pg_ctl" "\$@"
EOF
chmod 755 "$SHIM/pg_config" "$SHIM/initdb" "$SHIM/pg_ctl"
for f in "$PG_BINDIR"/*; do
  b=$(basename "$f")
  case "$b" in pg_config|initdb|pg_ctl) ;; *) ln -sfn "$f" "$SHIM/$b" ;; esac
done

mkdir -p "$PGRX_HOME"
if [ "$(id -u)" -eq 0 ]; then chown "$PG_RUNAS:" "$PGRX_HOME"; fi

# cargo does not pass .cargo/config.toml [env] to subcommands, and the pgrx test harness needs
# $USER: `cargo pgrx` goes through this wrapper.
mkdir -p "$CARGO_HOME/bin"
W="$CARGO_HOME/bin/cargo-pgrx"
if [ -e "$W" ] && ! grep -q 'health_score setup wrapper' "$W" 2>/dev/null; then mv -f "$W" "$W.orig"; fi
cat > "$W" <<EOF
#!/bin/sh
# health_score setup wrapper: pinned cargo-pgrx $PGRX_VERSION with a root-safe environment.
export PGRX_HOME="\${PGRX_HOME:-$PGRX_HOME}"
export USER="\${USER:-\$(id -un)}"
exec "$REAL_CARGO_PGRX" "\$@"
EOF
chmod 755 "$W"

if ! grep -qs "pg$PG_MAJOR = \"$SHIM/pg_config\"" "$PGRX_HOME/config.toml"; then
  cargo pgrx init "--pg$PG_MAJOR" "$SHIM/pg_config" >/dev/null
fi
say "ready: $(cargo pgrx --version), PostgreSQL $("$PG_BINDIR/pg_config" --version)"
