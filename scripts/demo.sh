#!/usr/bin/env bash
# The demo, from a clean clone (re-runnable): installs what is missing, builds and installs the
# extension (release), starts PostgreSQL 15 in .demo/ on port 54329, loads a few thousand demo
# accounts with 90 days of daily snapshots and a health model, and prints the ten riskiest
# accounts and what costs them most, who got worse lately and why, and the steepest trends;
# then acting on the score: a CSM note that changes a score and expires, a flapping account
# held steady, the alert queue drained by a small consumer, a parent with three subsidiaries.
#   bash scripts/demo.sh          run it
#   bash scripts/demo.sh stop     stop the demo server
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$PWD/.demo
PORT=54329
DB=health_demo
if [ "${1:-}" = stop ]; then bash scripts/cluster.sh stop "$DIR"; echo "demo server stopped"; exit 0; fi

bash scripts/setup.sh
export PGRX_HOME=${PGRX_HOME:-/var/lib/pgrx} USER=${USER:-$(id -un)} PATH="$HOME/.cargo/bin:$PATH"
echo "== building and installing health_score (release; the first build takes a few minutes)"
bash scripts/install.sh 15 --release
echo "== starting PostgreSQL 15 in $DIR on port $PORT"
bash scripts/cluster.sh start "$DIR" "$PORT"
psql() { bash scripts/cluster.sh psql "$DIR" "$PORT" -U postgres "$@"; }
# pg_cron runs the nightly snapshot job; it must be preloaded (a restart, the first time only)
if ! psql -d postgres -qAt -c "SHOW shared_preload_libraries" | grep -q pg_cron; then
  printf '%s\n' "shared_preload_libraries = 'pg_cron'" "cron.database_name = '$DB'" \
    "cron.use_background_workers = on" >> "$DIR/data/postgresql.conf"
  bash scripts/cluster.sh stop "$DIR"
  bash scripts/cluster.sh start "$DIR" "$PORT"
fi
psql -d postgres -qAt -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
  || psql -d postgres -q -c "CREATE DATABASE $DB"
# a rebuilt library may define new objects: recreate the extension (the demo owns this database)
psql -d "$DB" -q -c "DROP EXTENSION IF EXISTS health_score CASCADE" 2>/dev/null
echo "== loading demo accounts, the customer_health model and 90 days of snapshots"
psql -d "$DB" -q -f scripts/demo.sql

psql -d "$DB" -q <<'SQL'
\pset footer off
\echo
\echo 'Accounts by band and plan:'
SELECT s.band, count(*) FILTER (WHERE a.plan = 'smb') AS smb,
       count(*) FILTER (WHERE a.plan = 'mid-market') AS mid_market,
       count(*) FILTER (WHERE a.plan = 'enterprise') AS enterprise,
       count(*) AS total
  FROM demo.account_signals a, LATERAL health_score.assess('customer_health', a) s
 GROUP BY s.band ORDER BY min(s.score) NULLS FIRST;
\echo
\echo 'The ten riskiest accounts, and the component that costs each the most points'
\echo '(points lost = scale x effective weight x (1 - normalized)):'
WITH scored AS (
    SELECT a.id, a.name, a.plan, s.score, s.band, s.coverage
      FROM demo.account_signals a, LATERAL health_score.assess('customer_health', a) s
     WHERE s.score IS NOT NULL
     ORDER BY s.score, a.id
     LIMIT 10)
SELECT s.id, s.name, s.plan, round(s.score::numeric, 1) AS score, s.band,
       round(s.coverage::numeric, 2) AS coverage, d.component AS costs_most, d.raw AS its_input,
       round(d.lost::numeric, 1) AS points_lost
  FROM scored s
  JOIN demo.account_signals a USING (id)
 CROSS JOIN LATERAL (
       SELECT e.component, e.raw, 100 * e.weight * (1 - e.normalized) AS lost
         FROM health_score.explain('customer_health', a) e
        WHERE e.input IS NOT NULL AND e.normalized IS NOT NULL
        ORDER BY lost DESC, e.component
        LIMIT 1) d
 ORDER BY s.score, s.id;
\echo
\echo 'Who got worse in the last 30 days (health_score.alerts: a drop of 15 points or a worse band):'
SELECT entity_key AS id, baseline_at::date AS since, round(baseline_score::numeric, 1) AS was,
       round(latest_score::numeric, 1) AS now, baseline_band || ' -> ' || latest_band AS band, band_change
  FROM health_score.alerts('customer_health', 15, '30 days')
 LIMIT 5;
\echo
\echo 'Why the account that fell furthest fell (health_score.drivers, points per component):'
SELECT a.entity_key AS id, d.component, d.parent, round(d.points_before::numeric, 1) AS before,
       round(d.points_after::numeric, 1) AS after, round(d.change::numeric, 1) AS change
  FROM (SELECT * FROM health_score.alerts('customer_health', 15, '30 days') LIMIT 1) a,
       health_score.drivers('customer_health', a.entity_key, a.baseline_at, a.latest_at) d
 WHERE d.change <> 0
 ORDER BY d.change;
\echo
\echo 'Steepest 90-day declines (the trend aggregate over the daily snapshots):'
SELECT entity_key AS id, round((t).first_score::numeric, 1) AS first, round((t).last_score::numeric, 1) AS last,
       round((t).slope_per_day::numeric, 2) AS points_per_day
  FROM (SELECT entity_key, health_score.trend(scored_at, score) AS t
          FROM health_score.scores WHERE model = 'customer_health' GROUP BY entity_key) s
 ORDER BY (t).slope_per_day NULLS LAST, entity_key
 LIMIT 5;
\echo
\echo 'Proving the score: the hand-made model against churn drawn from a hidden process'
\echo '(demo.account_outcomes; AUC = P(a churned account scores below a retained one)):'
SELECT accounts, churned, round(churn_rate::numeric, 3) AS churn_rate, round(auc::numeric, 3) AS auc,
       round(mean_coverage::numeric, 2) AS mean_coverage
  FROM health_score.evaluate('customer_health', 'demo.account_outcomes', 'churned');
SELECT CASE WHEN band IS NULL THEN 'all' ELSE coalesce(segment, 'base') END AS segment, coalesce(band, '(no score)') AS band, accounts, churned,
       round(churn_rate::numeric, 3) AS churn_rate, round(lift::numeric, 2) AS lift
  FROM health_score.band_report('customer_health', 'demo.account_outcomes', 'churned');
\echo
\echo 'Weights fitted to the outcomes (health_score.fit_report, 20% of accounts held out by a hash of id):'
SELECT component, parent, round(old_weight::numeric, 3) AS old_weight, round(new_weight::numeric, 3) AS new_weight,
       at_bound, rows_used, rows_excluded,
       round(holdout_auc_before::numeric, 3) AS holdout_auc_before, round(holdout_auc_after::numeric, 3) AS holdout_auc_after
  FROM health_score.fit_report('customer_health', 'demo.account_outcomes', 'churned', '{"holdout": 0.2, "key_column": "id"}');
SELECT health_score.set_model('customer_health',
           health_score.fit('customer_health', 'demo.account_outcomes', 'churned', '{"holdout": 0.2, "key_column": "id"}'))
       AS version \gset
\echo registered the fitted weights as customer_health version :version
SQL

psql -d "$DB" -q -f scripts/demo_proving.sql
psql -d "$DB" -q -f scripts/demo_acting.sql
# a small consumer of the alert queue, as a worker that sends e-mail would be: claim a batch
# (FOR UPDATE SKIP LOCKED, with a lease), send each event on, mark it done
sent=0
while :; do
  batch=$(psql -d "$DB" -qAt -F ' ' -c "SELECT id, entity_key, rule, baseline_band || '->' || band
                                          FROM health_score.claim_alert_events('demo-mailer', 25)")
  [ -n "$batch" ] || break
  while read -r id entity rule change; do
    sent=$((sent + 1))
    [ "$sent" -le 5 ] && echo "  to the team of account $entity: $rule ($change)"
    psql -d "$DB" -qAt -c "SELECT health_score.complete_alert_event($id, 'demo-mailer')" >/dev/null
  done <<< "$batch"
done
echo "  ... $sent events sent by the consumer; left in the queue: $(psql -d "$DB" -qAt -c \
  "SELECT count(*) FROM health_score.alert_events WHERE status IN ('open', 'claimed')")"

cat <<EOF

Every night at 03:00 pg_cron takes a new snapshot (job $(psql -d "$DB" -qAt -c "SELECT jobid FROM cron.job WHERE command LIKE '%customer_health%'"), see SELECT * FROM cron.job):
  SELECT health_score.schedule('customer_health', 'demo.account_signals', 'id', '0 3 * * *');

For Metabase or another BI tool: point it at demo.account_health, health_score.latest and
health_score.history, logged in as a member of health_score_reader (docs/dashboards.md).

Keep exploring:
  psql -h $DIR -p $PORT -U postgres $DB
  then  SELECT e.* FROM demo.account_signals a, health_score.explain('customer_health', a) e WHERE a.id = 42;
        SELECT * FROM health_score.latest WHERE band_change = 'worsened';
  Stop the server with: bash scripts/demo.sh stop
EOF
