#!/usr/bin/env bash
# How soon a cancellation stops each long computation of health_score (issue 15, item 8).
#   bash bench/cancel.sh [--pg 15|16|17|18]
# Builds and installs the extension (release) and starts the benchmark's cluster, like
# bench/run.sh. For each operation it times one run to the end, then runs it again under a
# statement_timeout of 30%, 60% and 90% of that time, so that the timeout falls in each phase
# of the computation (reading rows, validation, auc's final sort, fit's solve), and prints
# how long after the timeout the statement stopped. The target is under a second for each.
set -euo pipefail
cd "$(dirname "$0")/.."
major=15
[ "${1:-}" = --pg ] && major=$2
export HS_PG_MAJOR=$major
DIR=$PWD/target/bench-cluster-pg$major
PORT=$((55435 + major))
HS_PG_MAJORS="$(printf '%s\n' 15 "$major" | sort -u | paste -sd' ')" bash scripts/setup.sh
export PGRX_HOME=${PGRX_HOME:-/var/lib/pgrx} USER=${USER:-$(id -un)} PATH="$HOME/.cargo/bin:$PATH"
bash scripts/install.sh "$major" --release
bash scripts/cluster.sh start "$DIR" "$PORT"
trap 'bash scripts/cluster.sh stop "$DIR"' EXIT
psql() { bash scripts/cluster.sh psql "$DIR" "$PORT" -U postgres "$@"; }
psql -d postgres -qAt -c "SELECT 1 FROM pg_database WHERE datname = 'cancel'" | grep -q 1 \
  || psql -d postgres -q -c "CREATE DATABASE cancel"
psql -d cancel -q <<'SQL'
DROP EXTENSION IF EXISTS health_score CASCADE;
CREATE EXTENSION health_score;
-- a model at the component limit: 100 groups of 999 leaves
DROP TABLE IF EXISTS big_model;
CREATE TABLE big_model AS
SELECT jsonb_build_object('components', jsonb_agg(g ORDER BY i)) AS model
  FROM (SELECT i, jsonb_build_object('name', 'g' || i, 'weight', 1, 'components',
               (SELECT jsonb_agg(jsonb_build_object('name', 'c' || i || '_' || j, 'weight', j,
                                 'normalize', jsonb_build_object('type', 'linear', 'min', 0, 'max', j)))
                  FROM generate_series(1, 999) j)) AS g
          FROM generate_series(1, 100) i) groups;
-- 30M scores with outcomes, for auc's sort
DROP TABLE IF EXISTS auc_rows;
CREATE UNLOGGED TABLE auc_rows AS
SELECT random() * 100 AS score, random() < 0.2 AS churned FROM generate_series(1, 30000000);
-- 2M accounts with 8 inputs and an outcome, for fit
DROP TABLE IF EXISTS fit_rows;
CREATE UNLOGGED TABLE fit_rows AS
SELECT g AS id, random() * 10 AS a, random() * 10 AS b, random() * 10 AS c, random() * 10 AS d,
       random() * 10 AS e, random() * 10 AS f, random() * 10 AS h, random() * 10 AS k,
       random() < 0.3 AS churned
  FROM generate_series(1, 2000000) g;
ANALYZE;
SELECT health_score.set_model('fit8', jsonb_build_object('components',
       (SELECT jsonb_agg(jsonb_build_object('name', x, 'weight', 1,
                         'normalize', jsonb_build_object('type', 'linear', 'min', 0, 'max', 10)))
          FROM unnest(ARRAY['a', 'b', 'c', 'd', 'e', 'f', 'h', 'k']) x)));
SQL

# seconds a statement takes, with an optional statement_timeout in ms; prints "<seconds> <sqlstate>"
run() {
  local timeout=$1 sql=$2
  python3 - "$DIR" "$PORT" "$timeout" "$sql" <<'PY'
import subprocess, sys, time
host, port, timeout, sql = sys.argv[1:5]
script = f"SET statement_timeout = {timeout};\n\\set VERBOSITY sqlstate\n{sql};\n"
start = time.monotonic()
out = subprocess.run(["psql", "-h", host, "-p", port, "-U", "postgres", "-d", "cancel", "-qAtX"],
                     input=script, capture_output=True, text=True)
elapsed = time.monotonic() - start
state = out.stderr.strip().split()[-1] if out.returncode or out.stderr.strip() else "none"
print(f"{elapsed:.3f} {state}")
PY
}

export PATH="$(bash scripts/pg_bindir.sh "$major"):$PATH"
echo "== how long after statement_timeout each operation stops (PostgreSQL $major, $(nproc) cores)"
printf '%-40s %9s %10s %9s %8s\n' operation "full (s)" "timeout" "stopped" "overrun"
while IFS='|' read -r name sql; do
  read -r full state < <(run 0 "$sql")
  [ "$state" = none ] || { echo "$name failed: $state" >&2; exit 1; }
  for share in 300 600 900; do
    timeout_ms=$(python3 -c "print(max(1, int($full * $share)))")
    read -r stopped state < <(run "$timeout_ms" "$sql")
    overrun=$(python3 -c "print(f'{$stopped - $timeout_ms / 1000:.3f}')")
    printf '%-40s %9.3f %8sms %9.3f %8s %s\n' "$name" "$full" "$timeout_ms" "$stopped" "$overrun" "$state"
  done
done <<'OPS'
validate a 100,000-component model|SELECT count(*) FROM big_model, health_score.validate(model)
auc over 30M rows|SELECT health_score.auc(score, churned) FROM auc_rows
fit over 2M rows (8 leaves)|SELECT health_score.fit('fit8', 'fit_rows', 'churned') IS NOT NULL
OPS
