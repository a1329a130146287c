#!/usr/bin/env bash
# Builds and installs Citus 13.2.2 into Debian's PostgreSQL 15 from the vendored source
# (../shared/vendor beside the repository, or $HS_VENDOR_DIR: no registry serves Citus for
# Debian 12), idempotently: an installed citus.so of that version is left alone (a re-run takes
# a second), and the build tree is kept outside the repository, under $HS_PG_CACHE, so that a
# second machine state reuses it. About 4 minutes on 2 cores the first time.
#   scripts/citus.sh            exits 0 having installed it, 3 when the vendored source is absent
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENDOR=${HS_VENDOR_DIR:-$ROOT/../shared/vendor}
VERSION=13.2.2
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
if [ -z "${HS_PG_CACHE:-}" ]; then
  if [ "$(id -u)" -eq 0 ]; then HS_PG_CACHE=/var/cache/health_score; else HS_PG_CACHE=$HOME/.cache/health_score; fi
fi
say() { printf '== citus: %s\n' "$*"; }
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo

archive=$VENDOR/citus-$VERSION-src.tar.xz
patch_file=$VENDOR/citus-$VERSION-pg15.20.patch
if [ ! -f "$archive" ]; then
  say "no vendored source at $archive"
  exit 3
fi
pkglibdir=$("$PG_CONFIG" --pkglibdir)
sharedir=$("$PG_CONFIG" --sharedir)
if [ -f "$pkglibdir/citus.so" ] && grep -q "default_version = '13.2-1'" "$sharedir/extension/citus.control" 2>/dev/null; then
  say "Citus $VERSION is installed"
  exit 0
fi

# what its configure asks for, as the vendored README lists it
bash "$ROOT/scripts/apt_install.sh" citus libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev autoconf flex bison

build=$HS_PG_CACHE/citus-$VERSION-build
mkdir -p "$HS_PG_CACHE"
if [ ! -f "$build/.built" ]; then
  say "building Citus $VERSION in $build (about 4 minutes)"
  rm -rf "$build"
  mkdir -p "$build"
  tar -xJf "$archive" -C "$build" --strip-components=1
  (cd "$build" && patch -p1 -s < "$patch_file" \
     && ./configure -q PG_CONFIG="$PG_CONFIG" >/dev/null \
     && make -s -j"$(nproc)" >"$build/make.log" 2>&1) || { tail -50 "$build/make.log" >&2; exit 1; }
  touch "$build/.built"
fi
say "installing Citus $VERSION into PostgreSQL 15"
# its Makefile warns of a target it overrides on every make: shown only if the install fails
install_log=$(mktemp)
(cd "$build" && $SUDO make -s install >"$install_log" 2>&1) || { cat "$install_log" >&2; rm -f "$install_log"; exit 1; }
rm -f "$install_log"
