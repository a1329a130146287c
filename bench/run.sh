#!/usr/bin/env bash
# The scoring benchmark, in one command: builds and installs the extension (release), starts a
# cluster with default settings in target/bench-cluster, loads 1M accounts and 10M history
# points, and prints the timings and ratios of health_score against hand-written SQL
# (bench/run.py): scoring, snapshots and trends.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$PWD/target/bench-cluster
PORT=55450
bash scripts/setup.sh
export PGRX_HOME=${PGRX_HOME:-/var/lib/pgrx} USER=${USER:-$(id -un)} PATH="$HOME/.cargo/bin:$PATH"
mkdir -p target
cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config >target/bench-build.log 2>&1 \
  || { cat target/bench-build.log; exit 1; }
bash scripts/cluster.sh start "$DIR" "$PORT"
trap 'bash scripts/cluster.sh stop "$DIR"' EXIT
psql() { bash scripts/cluster.sh psql "$DIR" "$PORT" -U postgres "$@"; }
psql -d postgres -qAt -c "SELECT 1 FROM pg_database WHERE datname = 'bench'" | grep -q 1 || psql -d postgres -q -c "CREATE DATABASE bench"
# the bench database is the benchmark's own: start from no extension and nothing left in its
# schema (an object created there by hand would make CREATE EXTENSION fail)
psql -d bench -q -c "DROP EXTENSION IF EXISTS health_score CASCADE" -c "DROP SCHEMA IF EXISTS health_score CASCADE" 2>/dev/null
echo "== loading 1M accounts and 10M history points"
psql -d bench -q -f bench/setup.sql >/dev/null
psql -d bench -q -f bench/history.sql >/dev/null
echo "== timing (PostgreSQL $(psql -d bench -qAt -c 'SHOW server_version'), $(nproc) cores, default settings)"
PGUSER=postgres python3 bench/run.py "$DIR" "$PORT" bench --history
