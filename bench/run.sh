#!/usr/bin/env bash
# The scoring benchmark, in one command: builds and installs the extension (release), starts a
# cluster with default settings in target/bench-cluster-pg<major>, loads 1M accounts and 10M history
# points, and prints the timings and ratios of health_score against hand-written SQL
# (bench/run.py): scoring, snapshots and trends.
#   bash bench/run.sh [--pg 15|16|17|18] [--no-history] [--snapshots-only [--only TEXT]] [--fit-only] [--storage [accounts]] [--latest-scaling [accounts]]
# --pg runs it on another PostgreSQL major (set up by scripts/setup.sh, in its own cluster);
# --no-history leaves out the snapshot, alerts and latest pairs (the longest part);
# --snapshots-only times the snapshot pairs alone (ten snapshots stored, then the eleventh),
# --only TEXT just those whose name contains TEXT (such as "manual inputs");
# --fit-only times fit (weights, then weights and shapes) and suggest against one scoring pass;
# --storage measures instead what a stored snapshot row takes on disk (bench/storage.sql: ten
# snapshots of that many accounts, 100000 unless given, without and with inputs kept);
# --latest-scaling times the whole latest view over that many accounts (300000 unless given)
# with one snapshot stored and with thirty (bench/latest_scaling.sql; thirty snapshots of 1M
# accounts take some 30 GB in the 0.2.0 layout).
set -euo pipefail
cd "$(dirname "$0")/.."
major=15; history=--history; storage=; latest_scaling=; only=
while [ $# -gt 0 ]; do
  case "$1" in
    --pg) major=$2; shift 2 ;;
    --no-history) history=; shift ;;
    --snapshots-only) history=--snapshots-only; shift ;;
    --fit-only) history=--fit-only; shift ;;
    --only) only=--only=$2; shift 2 ;;
    --storage) storage=100000; shift; case "${1:-}" in [0-9]*) storage=$1; shift ;; esac ;;
    --latest-scaling) latest_scaling=300000; shift; case "${1:-}" in [0-9]*) latest_scaling=$1; shift ;; esac ;;
    *) echo "usage: $0 [--pg 15|16|17|18] [--no-history] [--snapshots-only [--only TEXT]] [--fit-only] [--storage [accounts]] [--latest-scaling [accounts]]" >&2; exit 2 ;;
  esac
done
export HS_PG_MAJOR=$major
DIR=$PWD/target/bench-cluster-pg$major
PORT=$((55435 + major))
HS_PG_MAJORS="$(printf '%s\n' 15 "$major" | sort -u | paste -sd' ')" bash scripts/setup.sh
export PGRX_HOME=${PGRX_HOME:-/var/lib/pgrx} USER=${USER:-$(id -un)} PATH="$HOME/.cargo/bin:$PATH"
bash scripts/install.sh "$major" --release
# run.py's psql is the major's own
export PATH="$(bash scripts/pg_bindir.sh "$major"):$PATH"
bash scripts/cluster.sh start "$DIR" "$PORT"
trap 'bash scripts/cluster.sh stop "$DIR"' EXIT
psql() { bash scripts/cluster.sh psql "$DIR" "$PORT" -U postgres "$@"; }
if [ -n "$storage" ]; then
  # a database of its own, new each time: its growth is the snapshots' alone
  psql -d postgres -q -c "DROP DATABASE IF EXISTS storage" -c "CREATE DATABASE storage"
  psql -d storage -q -v accounts="$storage" -f bench/storage.sql
  exit 0
fi
psql -d postgres -qAt -c "SELECT 1 FROM pg_database WHERE datname = 'bench'" | grep -q 1 || psql -d postgres -q -c "CREATE DATABASE bench"
# the bench database is the benchmark's own: start from no extension and nothing left in its
# schema (an object created there by hand would make CREATE EXTENSION fail)
psql -d bench -q -c "DROP EXTENSION IF EXISTS health_score CASCADE" -c "DROP SCHEMA IF EXISTS health_score CASCADE" 2>/dev/null
echo "== loading 1M accounts and 10M history points"
psql -d bench -q -f bench/setup.sql >/dev/null
if [ -n "$latest_scaling" ]; then
  psql -d bench -q -v accounts="$latest_scaling" -f bench/latest_scaling.sql
  exit 0
fi
psql -d bench -q -f bench/fit.sql >/dev/null
[ "$history" = --fit-only ] || psql -d bench -q -f bench/history.sql >/dev/null
echo "== timing (PostgreSQL $(psql -d bench -qAt -c 'SHOW server_version'), $(nproc) cores, default settings)"
PGUSER=postgres python3 bench/run.py "$DIR" "$PORT" bench $history ${only:+"$only"}
