#!/usr/bin/env bash
# Plans and timings on a Citus cluster on this machine (docs/scale-out.md): a coordinator and
# two workers (target/citus-bench-pg15, ports 55470-55472), the benchmark's 1M accounts
# distributed by id in 8 shards and the same rows in a plain table on the coordinator; each
# query is timed over both (bench/citus.py: a warm-up, five alternating rounds, the median)
# and its plan's shape printed. On one machine the workers share its cores: the timings
# compare plan shapes, not scale.
#   bash bench/citus.sh
set -euo pipefail
cd "$(dirname "$0")/.."
HS_PG_MAJORS=15 bash scripts/setup.sh
status=0
bash scripts/citus.sh || status=$?
if [ "$status" = 3 ]; then
  echo "skipped: Citus needs its vendored source in ../shared/vendor (or \$HS_VENDOR_DIR)"
  exit 0
fi
[ "$status" = 0 ] || exit "$status"
export PGRX_HOME=${PGRX_HOME:-/var/lib/pgrx} USER=${USER:-$(id -un)} PATH="$HOME/.cargo/bin:$PATH"
bash scripts/install.sh 15 --release
export PATH="$(bash scripts/pg_bindir.sh 15):$PATH"
DIR=$PWD/target/citus-bench-pg15
nodes=(coordinator:55470 worker1:55471 worker2:55472)
stop_all() { for n in "${nodes[@]}"; do bash scripts/cluster.sh stop "$DIR/${n%%:*}"; done; }
trap stop_all EXIT
for n in "${nodes[@]}"; do
  bash scripts/cluster.sh start "$DIR/${n%%:*}" "${n##*:}" "shared_preload_libraries = 'citus'" \
    "max_worker_processes = 16" "citus.shard_count = 8"
done
psql() { local node=$1 port=$2; shift 2; bash scripts/cluster.sh psql "$DIR/$node" "$port" -U postgres -v ON_ERROR_STOP=1 "$@"; }
for n in "${nodes[@]}"; do
  node=${n%%:*} port=${n##*:}
  # a database of its own, new each time, on every node
  psql "$node" "$port" -d postgres -q -c "DROP DATABASE IF EXISTS citus_bench WITH (FORCE)" -c "CREATE DATABASE citus_bench"
  psql "$node" "$port" -d citus_bench -q -c "CREATE EXTENSION citus"
done
psql coordinator 55470 -d citus_bench -q >/dev/null <<'SQL'
SELECT citus_set_coordinator_host('127.0.0.1', 55470);
SELECT citus_add_node('127.0.0.1', 55471);
SELECT citus_add_node('127.0.0.1', 55472);
CREATE EXTENSION health_score;
CREATE SCHEMA bench;
SELECT setseed(0.42);
\set accounts 1000000
\i bench/accounts.sql
ALTER TABLE bench.accounts ADD COLUMN region text, ADD COLUMN churned boolean, ADD COLUMN at timestamptz;
UPDATE bench.accounts SET region = (ARRAY['north', 'south', 'east', 'west'])[1 + id % 4],
                          churned = random() < 1 / (1 + exp(-(1.5 - 0.004 * logins - 1.2 * adoption))),
                          at = timestamptz '2026-01-01' + (id % 90) * interval '1 day';
CREATE TABLE bench.accounts_dist (LIKE bench.accounts);
SELECT create_distributed_table('bench.accounts_dist', 'id');
INSERT INTO bench.accounts_dist SELECT * FROM bench.accounts;
VACUUM ANALYZE bench.accounts, bench.accounts_dist;
\i bench/model.sql
SQL
# the single server's side of the snapshot pair: the same accounts in a database without Citus
psql coordinator 55470 -d postgres -q -c "DROP DATABASE IF EXISTS citus_bench_single WITH (FORCE)" \
  -c "CREATE DATABASE citus_bench_single"
psql coordinator 55470 -d citus_bench_single -q >/dev/null <<'SQL'
CREATE EXTENSION health_score;
CREATE SCHEMA bench;
SELECT setseed(0.42);
\set accounts 1000000
\i bench/accounts.sql
VACUUM ANALYZE bench.accounts;
\i bench/model.sql
SQL
python3 bench/citus.py 55470 citus_bench "$DIR/coordinator"
