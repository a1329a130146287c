#!/usr/bin/env python3
"""Times health_score against the hand-written SQL that computes the same scores, in one run.

Each pair runs in one psql session: a warm-up of each side, then five alternating rounds;
the figure is the median. Both sides run with the same (default) server settings, JIT as
installed, parallel query as the planner chooses. Before timing, the benchmark checks that
both sides return the same numbers (to 1e-9 relative) on every row.
"""
import re
import statistics
import subprocess
import sys

HOST, PORT, DB = sys.argv[1], sys.argv[2], sys.argv[3]  # then optionally --history, --snapshots-only, --views-only or --fit-only
ROUNDS = 5


def hand_leaves(col):
    """Each leaf's normalized value n as a double precision expression; col(name) reads an input."""
    lg, act, adp = col("logins"), col("active_share"), col("adoption")
    rec, nps, tk = col("days_since_login"), col("nps", text=True), col("open_tickets")
    cs, od = col("csat"), col("overdue_days")
    n_logins = f"(CASE WHEN {lg} <= 0 THEN 0::float8 ELSE LEAST(GREATEST(ln(1 + {lg}) / ln(501::float8), 0::float8), 1::float8) END)"
    n_active = (f"(CASE WHEN {act} <= 0 THEN 0::float8 WHEN {act} >= 1 THEN 1::float8 "
                f"WHEN {act} < 0.5::float8 THEN 0.7::float8 * {act} / 0.5::float8 "
                f"ELSE 0.7::float8 + 0.3::float8 * ({act} - 0.5::float8) / 0.5::float8 END)")
    n_adoption = f"LEAST(GREATEST(({adp} - 0.1::float8) / 0.8::float8, 0::float8), 1::float8)"
    n_recency = f"power(0.5::float8, GREATEST({rec}, 0::float8) / 14::float8)"
    n_nps = f"(CASE {nps} WHEN 'promoter' THEN 1::float8 WHEN 'passive' THEN 0.6::float8 WHEN 'detractor' THEN 0::float8 END)"
    n_tickets = f"(CASE WHEN {tk} >= 8 THEN 0.2::float8 WHEN {tk} >= 3 THEN 0.6::float8 WHEN {tk} >= 0 THEN 1::float8 ELSE 0::float8 END)"
    n_csat = f"(1::float8 / (1::float8 + exp(-1.5::float8 * ({cs} - 3::float8))))"
    n_billing = f"(1::float8 - LEAST(GREATEST({od} / 90::float8, 0::float8), 1::float8))"
    return dict(logins=n_logins, active=n_active, adoption=n_adoption, recency=n_recency, nps=n_nps,
                tickets=n_tickets, csat=n_csat, billing=n_billing)


def hand(col):
    """The model as one double precision expression; col(name) reads an input."""
    n = hand_leaves(col)
    n_logins, n_active, n_adoption, n_recency = n["logins"], n["active"], n["adoption"], n["recency"]
    n_nps, n_tickets, n_csat, n_billing = n["nps"], n["tickets"], n["csat"], n["billing"]
    usage = f"((2 * {n_logins} + {n_active} + {n_adoption}) / 4)"
    engagement = f"(({n_recency} + {n_nps}) / 2)"
    support = f"(({n_tickets} + {n_csat}) / 2)"
    return f"(100 * (3 * {usage} + 2 * {engagement} + 2 * {support} + {n_billing}) / 8)"


HAND_ROW = hand(lambda name, text=False: name)

# Each component's (group weight share, weight share within its group), as the model has them.
SHARES = dict(logins=(3 / 8, 2 / 4), active=(3 / 8, 1 / 4), adoption=(3 / 8, 1 / 4), recency=(2 / 8, 1 / 2),
              nps=(2 / 8, 1 / 2), tickets=(2 / 8, 1 / 2), csat=(2 / 8, 1 / 2), billing=(1 / 8, 1))
GROUPS = dict(usage=(3 / 8, ["logins", "active", "adoption"]), engagement=(2 / 8, ["recency", "nps"]),
              support=(2 / 8, ["tickets", "csat"]))


def hand_snapshot():
    """What snapshot writes, in plain SQL: the score, band, coverage and every component's n and
    points (the bench data has no missing inputs, so coverage is 1 and no group reweights), into
    a table like health_score.scores with the same primary key."""
    leaves = hand_leaves(lambda name, text=False: name)
    n_cols = ", ".join(f"{e} AS n_{k}" for k, e in leaves.items())
    group_n = {g: "(" + " + ".join(f"{SHARES[c][1]!r}::float8 * n_{c}" for c in cs) + ")" for g, (_, cs) in GROUPS.items()}
    parts = []
    for k, (group_share, share) in SHARES.items():
        parts.append(f"'{k}', jsonb_build_object('n', n_{k}, 'points', 100 * {group_share * share!r}::float8 * n_{k})")
    for g, (share, _) in GROUPS.items():
        parts.append(f"'{g}', jsonb_build_object('n', {group_n[g]}, 'points', 100 * {share!r}::float8 * {group_n[g]})")
    score = "(100 * (" + " + ".join(f"{g * w!r}::float8 * n_{k}" for k, (g, w) in SHARES.items()) + "))"
    # OFFSET 0 keeps the planner from pasting each leaf's expression into every use of it
    return (f"INSERT INTO bench.plain_snapshots (model, model_version, entity_key, scored_at, score, band, band_rank, "
            f"coverage, segment, components) "
            f"SELECT 'bench', 1, id::text, '2026-01-01', score, "
            f"CASE WHEN score >= 75 THEN 'green' WHEN score >= 50 THEN 'yellow' ELSE 'red' END, "
            f"CASE WHEN score >= 75 THEN 2 WHEN score >= 50 THEN 1 ELSE 0 END, 1, NULL, "
            f"jsonb_build_object({', '.join(parts)}) "
            f"FROM (SELECT *, {score} AS score FROM (SELECT id, {n_cols} FROM bench.accounts OFFSET 0) l0) l")


PLAIN_SNAPSHOT = ("TRUNCATE bench.plain_snapshots", hand_snapshot())
ONE_SNAPSHOT = ("TRUNCATE health_score_internal.score_rows, health_score.snapshots; DELETE FROM health_score.alert_rules; "
                "SELECT health_score.snapshot('bench', 'bench.accounts', 'id', '2026-01-01', keep_inputs => false)")
HAND_DOC = hand(lambda name, text=False: f"(doc->>'{name}')" if text else f"(doc->>'{name}')::float8")

# (ours, its query, theirs, its query, target ratio); a query may be (untimed setup, timed query)
PAIRS = [
    ("score('bench', row)", "SELECT sum(health_score.score('bench', a)) FROM bench.accounts a",
     "hand-written SQL over columns", f"SELECT sum({HAND_ROW}) FROM bench.accounts", 0.6),
    ("score('bench', jsonb)", "SELECT sum(health_score.score('bench', doc)) FROM bench.docs",
     "hand-written SQL with ->> casts", f"SELECT sum({HAND_DOC}) FROM bench.docs", 0.6),
]
BASELINE = ("bare sum(column) scan", "SELECT sum(logins) FROM bench.accounts")

# history (bench/history.sql): snapshots of the 1M accounts, trends over 10M points.
# A snapshot is timed as the eleventh of a month whose ten first are stored (the nightly job's
# case, issue 17): before each run the eleventh's rows, run record and current state are put
# back as they were, untimed (straight from its partition, so that no trigger recomputes).
ELEVENTH = "2026-01-11"
RESET_ELEVENTH = f"""DO $$ BEGIN
    EXECUTE format('DELETE FROM health_score_internal.%I WHERE scored_at = %L',
                   (SELECT partition_name FROM health_score_internal.partitions
                     WHERE model = 'bench' AND from_at <= '{ELEVENTH}' AND to_at > '{ELEVENTH}'), '{ELEVENTH}');
END $$;
DELETE FROM health_score.snapshots WHERE scored_at = '{ELEVENTH}';
TRUNCATE health_score_internal.current_state;
INSERT INTO health_score_internal.current_state SELECT * FROM bench.saved_state;
VACUUM health_score_internal.score_rows, health_score_internal.current_state"""
SNAPSHOT = (RESET_ELEVENTH, f"SELECT health_score.snapshot('bench', 'bench.accounts', 'id', '{ELEVENTH}', keep_inputs => false)")
SNAPSHOT_KEEP = (RESET_ELEVENTH, f"SELECT health_score.snapshot('bench', 'bench.accounts', 'id', '{ELEVENTH}')")
# The alert queue (issue 18): the eleventh snapshot of a source where 5% of the accounts lack
# one input, with a coverage rule that fires for exactly those (50,000 new events each run),
# against the same snapshot without rules.
GAPS_VIEW = """CREATE OR REPLACE VIEW bench.accounts_gaps AS
    SELECT id, CASE WHEN id % 20 = 0 THEN NULL ELSE logins END AS logins, active_share, adoption, days_since_login,
           nps, open_tickets, csat, overdue_days FROM bench.accounts"""
SNAPSHOT_GAPS = f"SELECT health_score.snapshot('bench', 'bench.accounts_gaps', 'id', '{ELEVENTH}', keep_inputs => false)"
SNAPSHOT_RULES = (f"""{RESET_ELEVENTH}; {GAPS_VIEW}; TRUNCATE health_score.alert_events;
SELECT health_score.set_alert_rule('bench', 'gaps', 'coverage_below', threshold => 0.99)""", SNAPSHOT_GAPS)
SNAPSHOT_NO_RULES = (f"""{RESET_ELEVENTH}; {GAPS_VIEW}; TRUNCATE health_score.alert_events;
SELECT health_score.drop_alert_rule('bench', 'gaps')""", SNAPSHOT_GAPS)
# CSM inputs (issue 18): the eleventh snapshot with 10,000 active manual inputs (1% of the
# accounts, each replacing its nps), against the same snapshot without any.
MANUAL_INPUTS = """TRUNCATE health_score.manual_inputs;
INSERT INTO health_score.manual_inputs (model, entity_key, input, value, reason, set_by, set_at)
SELECT 'bench', id::text, 'nps', 'detractor', 'benchmark', 'bench', now() FROM bench.accounts WHERE id % 100 = 0"""
SNAPSHOT_MANUAL = (f"{RESET_ELEVENTH}; {MANUAL_INPUTS}", SNAPSHOT[1])
SNAPSHOT_NO_MANUAL = (f"{RESET_ELEVENTH}; TRUNCATE health_score.manual_inputs", SNAPSHOT[1])
PLAIN_INSERT = ("TRUNCATE bench.plain_scores",
                f"INSERT INTO bench.plain_scores SELECT id::text, '{ELEVENTH}', {HAND_ROW} FROM bench.accounts")
# The floor: what writing a snapshot's rows costs when nothing is left to compute, into tables
# like its own (ten snapshots stored, the current state of the tenth) with the same keys
STATE_COLUMNS = ("scored_at, model_version, score, band, band_rank, coverage, segment, previous_at, previous_score, "
                 "previous_band, previous_band_rank")
COPY_WRITTEN = (f"""DELETE FROM bench.history_copy WHERE scored_at = '{ELEVENTH}';
TRUNCATE bench.state_copy; INSERT INTO bench.state_copy SELECT * FROM bench.saved_state;
VACUUM bench.history_copy, bench.state_copy""",
                "WITH h AS (INSERT INTO bench.history_copy SELECT * FROM bench.finished_rows) "
                "INSERT INTO bench.state_copy AS c SELECT * FROM bench.finished_state "
                "ON CONFLICT (model, entity_key) DO UPDATE SET "
                + ", ".join(f"{col} = excluded.{col}" for col in STATE_COLUMNS.split(", ")))
TREND = ("SELECT count(*), sum((t).slope_per_day) FROM "
         "(SELECT account, health_score.trend(at, score) AS t FROM bench.series GROUP BY account) x")
PLAIN_TREND = ("SELECT count(*), sum(slope) FROM (SELECT account, count(*), min(at), max(at), min(score), max(score), "
               "regr_slope(score, extract(epoch FROM at) / 86400) AS slope FROM bench.series GROUP BY account) x")
AUC = "SELECT health_score.auc(score, churned) FROM bench.outcomes"
MEDIAN = "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY score) FROM bench.outcomes"
# over one snapshot of the 1M accounts (store_one_snapshot)
BACKTEST = ("SELECT count(*), sum(churned) FROM health_score.backtest('bench', 'bench.churns', 'account', "
            "'churned_on', '90 days')")
PLAIN_JOIN = ("SELECT count(*) FROM (SELECT s.scored_at, count(*) FROM health_score.scores s "
              "LEFT JOIN bench.churns c ON c.account = s.entity_key WHERE s.model = 'bench' GROUP BY s.scored_at) x")
FIT = "SELECT health_score.fit('bench', 'bench.fit_accounts', 'churned')"
SCORE_PASS = "SELECT count(health_score.score('bench', a)) FROM bench.fit_accounts a"
FIT_SHAPES = "SELECT health_score.fit('bench', 'bench.fit_accounts', 'churned', '{\"shapes\": true}')"
SUGGEST = "SELECT count(*) FROM health_score.suggest('bench', 'bench.suggest_accounts', 'churned')"
# alerts() and latest over two weekly snapshots of the 1M accounts, against plain SQL: the
# reference of the cluster tests (tests/cluster/alerts_reference.sql: one lookup per entity through the
# primary key, drivers from each version's tree) and latest as DISTINCT ON with a lookup of the
# previous snapshot per entity
ALERTS = "SELECT count(*), sum(score_change) FROM health_score.alerts('bench', 10, '1 day')"
PLAIN_ALERTS = "SELECT count(*), sum(score_change) FROM bench.reference_alerts('bench', 10, '1 day')"
LATEST = "SELECT count(*), sum(delta), count(*) FILTER (WHERE band_change = 'worsened') FROM health_score.latest"
PLAIN_LATEST = """SELECT count(*), sum(l.score - p.score), count(*) FILTER (WHERE l.band_rank < p.band_rank)
  FROM (SELECT DISTINCT ON (s.model, s.entity_key) s.* FROM health_score.scores s
         ORDER BY s.model, s.entity_key, s.scored_at DESC) l
  LEFT JOIN LATERAL (SELECT s.score, s.band_rank FROM health_score.scores s
                      WHERE s.model = l.model AND s.entity_key = l.entity_key AND s.scored_at < l.scored_at
                      ORDER BY s.scored_at DESC LIMIT 1) p ON true"""
VIEW_PAIRS = [
    ("alerts(): 23k of 1M accounts", ALERTS, "the plain reference query", PLAIN_ALERTS, None),
    ("latest, 1M accounts x 2 snapshots", LATEST, "DISTINCT ON and a lookup each", PLAIN_LATEST, None),
]
SNAPSHOT_PAIRS = [
    ("snapshot, 1M accounts, 10 stored", SNAPSHOT, "INSERT ... SELECT hand-written SQL", PLAIN_INSERT, 3.0),
    ("snapshot, 1M accounts, 10 stored", SNAPSHOT, "copying the rows it writes", COPY_WRITTEN, 1.2),
    ("snapshot keeping inputs", SNAPSHOT_KEEP, "INSERT ... SELECT hand-written SQL", PLAIN_INSERT, None),
    ("snapshot, rules firing for 5%", SNAPSHOT_RULES, "the same snapshot without rules", SNAPSHOT_NO_RULES, 1.2),
    ("snapshot, 10,000 manual inputs", SNAPSHOT_MANUAL, "the same snapshot without any", SNAPSHOT_NO_MANUAL, 1.1),
]
HISTORY_PAIRS = [
    ("trend() over 10M points", TREND, "count/min/max/regr_slope", PLAIN_TREND, 1.0),
    ("auc() over 1M rows", AUC, "percentile_cont(0.5) (a sort)", MEDIAN, 1.5),
    ("backtest() over 1M history rows", BACKTEST, "GROUP BY scored_at of the join", PLAIN_JOIN, 3.0),
]
FIT_PAIRS = [
    ("fit() over 1M rows x 8 leaves", FIT, "count(score()): one scoring pass", SCORE_PASS, 10.0),
    ("fit() with shapes, 1M rows x 8 leaves", FIT_SHAPES, "count(score()): one scoring pass", SCORE_PASS, 20.0),
    ("suggest(), 1M rows x 20 columns", SUGGEST, "count(score()): one scoring pass", SCORE_PASS, 60.0),
]


def psql(script):
    out = subprocess.run(["psql", "-X", "-h", HOST, "-p", PORT, "-d", DB, "-v", "ON_ERROR_STOP=1", "-qAt"],
                         input=script, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"psql failed:\n{out.stderr}")
    return out.stdout


def check_equal():
    rows = psql(f"""
        SELECT count(*) FILTER (WHERE abs(health_score.score('bench', a) - {HAND_ROW}) > 1e-9 * greatest(1, abs({HAND_ROW}))),
               count(*) FROM bench.accounts a;
        SELECT count(*) FILTER (WHERE abs(health_score.score('bench', doc) - {HAND_DOC}) > 1e-9 * greatest(1, abs({HAND_DOC}))),
               count(*) FROM bench.docs;
    """).split()
    for pair, line in zip(PAIRS, rows):
        bad, total = map(int, line.split("|"))
        if bad:
            sys.exit(f"MISMATCH: {pair[0]} differs from {pair[2]} on {bad} of {total} rows")
        print(f"checked: {pair[0]} equals {pair[2]} on all {total} rows (1e-9 relative)")


def check_history():
    """Both sides of the history pairs compute the same numbers."""
    bad = psql(f"""
        {ONE_SNAPSHOT}; {PLAIN_INSERT[0]}; {PLAIN_INSERT[1]};
        SELECT count(*) FROM health_score.scores s JOIN bench.plain_scores p USING (entity_key)
         WHERE abs(s.score - p.score) > 1e-9 * greatest(1, abs(p.score));
        SELECT (SELECT count(*) FROM health_score.scores) - (SELECT count(*) FROM bench.plain_scores);
        SELECT count(*) FROM (SELECT 1) one
         WHERE (SELECT abs(health_score.auc(score, churned) - (
                    -- Mann-Whitney from ranks: (rank sum of the retained - n_r (n_r + 1) / 2) / (n_c n_r)
                    SELECT (sum(r) FILTER (WHERE NOT churned) - count(*) FILTER (WHERE NOT churned)
                            * (count(*) FILTER (WHERE NOT churned) + 1) / 2.0)
                           / (count(*) FILTER (WHERE churned) * count(*) FILTER (WHERE NOT churned))::float8
                      FROM (SELECT churned, rank() OVER w + (count(*) OVER w - 1) / 2.0 AS r
                              FROM bench.outcomes WINDOW w AS (ORDER BY score
                                   RANGE BETWEEN CURRENT ROW AND CURRENT ROW)) ranked)) FROM bench.outcomes) > 1e-9;
        SELECT count(*) FROM (SELECT account, health_score.trend(at, score) AS t FROM bench.series GROUP BY account) o
          JOIN (SELECT account, count(*) AS n, min(score) AS lo, max(score) AS hi,
                       regr_slope(score, extract(epoch FROM at) / 86400) AS slope FROM bench.series GROUP BY account) p
         USING (account)
         WHERE (o.t).n <> p.n OR (o.t).min_score <> p.lo OR (o.t).max_score <> p.hi
            OR abs((o.t).slope_per_day - p.slope) > 1e-9 * greatest(1e-9, abs(p.slope));
    """).split()[-4:]  # (the snapshot prints its row count first)
    if any(int(b) for b in bad):
        sys.exit(f"MISMATCH in the history benchmarks: {bad}")
    print("checked: snapshot scores equal the hand-written SQL's on all 1M rows; "
          "auc() equals the Mann-Whitney rank formula; trend() equals count/min/max/regr_slope for all 100k accounts")


def check_snapshot_by_hand():
    """The hand-written snapshot writes what snapshot() writes, component by component."""
    bad = psql(f"""
        {ONE_SNAPSHOT}; {PLAIN_SNAPSHOT[0]}; {PLAIN_SNAPSHOT[1]};
        SELECT count(*) FROM health_score.scores s FULL JOIN bench.plain_snapshots p USING (entity_key)
         WHERE s.band IS DISTINCT FROM p.band OR s.band_rank IS DISTINCT FROM p.band_rank
            OR s.coverage IS DISTINCT FROM p.coverage OR s.segment IS DISTINCT FROM p.segment
            OR NOT abs(s.score - p.score) <= 1e-9 * greatest(1, abs(p.score))
            OR EXISTS (SELECT FROM jsonb_each(s.components) a FULL JOIN jsonb_each(p.components) b USING (key)
                        WHERE a.key IS NULL OR b.key IS NULL
                           OR NOT abs((a.value ->> 'n')::float8 - (b.value ->> 'n')::float8) <= 1e-12
                           OR NOT abs((a.value ->> 'points')::float8 - (b.value ->> 'points')::float8) <= 1e-9);
    """).split()[-1]
    if int(bad):
        sys.exit(f"MISMATCH: the hand-written snapshot differs from snapshot() on {bad} rows")
    print("checked: the hand-written snapshot writes the same score, band, coverage and components "
          "(n to 1e-12, points to 1e-9) as snapshot() for all 1M accounts")


def store_ten_snapshots():
    """Ten snapshots of the month stored (days 1 to 10), their current state kept aside, and
    the floor's tables filled as the snapshot pairs need them: the history copy holding the
    same ten, the eleventh's rows and current state as snapshot writes them."""
    days = "; ".join(f"SELECT health_score.snapshot('bench', 'bench.accounts', 'id', '2026-01-{d:02}', "
                     "keep_inputs => false)" for d in range(1, 11))
    psql(f"""
        SET client_min_messages = warning;
        TRUNCATE health_score_internal.score_rows, health_score.snapshots;
        {days};
        TRUNCATE bench.saved_state; INSERT INTO bench.saved_state SELECT * FROM health_score_internal.current_state;
        TRUNCATE bench.history_copy; INSERT INTO bench.history_copy SELECT * FROM health_score_internal.score_rows;
        {SNAPSHOT[1]};
        TRUNCATE bench.finished_rows;
        INSERT INTO bench.finished_rows SELECT * FROM health_score_internal.score_rows WHERE scored_at = '{ELEVENTH}';
        TRUNCATE bench.finished_state; INSERT INTO bench.finished_state SELECT * FROM health_score_internal.current_state;
        VACUUM ANALYZE;
    """)
    print("stored: ten snapshots of the 1M accounts (2026-01-01 to 10), the floor's tables filled")


def store_one_snapshot():
    """One snapshot of the 1M accounts: what backtest reads."""
    psql(f"SET client_min_messages = warning; {ONE_SNAPSHOT}; VACUUM ANALYZE health_score_internal.score_rows;")


def prepare_views():
    """Two weekly snapshots, the plain reference for alerts, and a check that both sides agree."""
    with open("tests/cluster/alerts_reference.sql") as f:
        reference = f.read().replace("pg_temp.", "bench.")
    out = psql(f"""
        TRUNCATE health_score_internal.score_rows, health_score.snapshots;
        SET client_min_messages = warning;
        SELECT health_score.snapshot('bench', 'bench.accounts', 'id', '2026-01-01', keep_inputs => false);
        SELECT health_score.snapshot('bench', 'bench.accounts_later', 'id', '2026-01-08', keep_inputs => false);
        VACUUM ANALYZE health_score_internal.score_rows;
        DROP FUNCTION IF EXISTS bench.reference_alerts, bench.reference_changes;
        {reference}
        SELECT count(*) FROM ((SELECT * FROM health_score.alerts('bench', 10, '1 day')
                               EXCEPT ALL SELECT * FROM bench.reference_alerts('bench', 10, '1 day'))
                              UNION ALL (SELECT * FROM bench.reference_alerts('bench', 10, '1 day')
                               EXCEPT ALL SELECT * FROM health_score.alerts('bench', 10, '1 day'))) d;
        SELECT a.n = b.n AND a.w = b.w AND abs(a.s - b.s) <= 1e-9 * greatest(1, abs(b.s))
          FROM ({LATEST}) a(n, s, w), ({PLAIN_LATEST}) b(n, s, w);
    """).split()[-2:]
    if out != ["0", "t"]:
        sys.exit(f"MISMATCH in the view benchmarks: {out}")
    print("checked: alerts() returns the reference's rows, drivers included; latest agrees with the plain query")


def time_queries(queries):
    """Warm-up, then ROUNDS alternating rounds; returns per-query lists of milliseconds. A
    query given as (setup, query) runs its setup untimed before each timed run."""
    script = ""
    for _ in range(ROUNDS + 1):
        for q in queries:
            setup, query = q if isinstance(q, tuple) else (None, q)
            if setup:
                script += "\\timing off\n" + setup + ";\n"
            script += "\\timing on\n" + query + ";\n\\timing off\n"
    times = [float(t) for t in re.findall(r"Time: ([0-9.]+) ms", psql(script))]
    times = times[len(queries):]  # drop the warm-up
    return [times[i::len(queries)] for i in range(len(queries))]


def report(pairs):
    results = []
    for ours_name, ours, theirs_name, theirs, target in pairs:
        t_ours, t_theirs = time_queries([ours, theirs])
        m_ours, m_theirs = statistics.median(t_ours), statistics.median(t_theirs)
        results.append((ours_name, m_ours, theirs_name, m_theirs, target))
        for name, ts, m in ((ours_name, t_ours, m_ours), (theirs_name, t_theirs, m_theirs)):
            print(f"{name:34} {m:10.1f} {' '.join(f'{t:.0f}' for t in ts):>40}")
    return results


def main():
    history = "--history" in sys.argv
    if "--snapshots-only" in sys.argv:  # the snapshot pairs alone (they store their own history)
        # --only=TEXT: just the pairs whose name contains TEXT
        only = next((a[len("--only="):] for a in sys.argv if a.startswith("--only=")), "")
        store_ten_snapshots()
        for ours_name, m_ours, theirs_name, m_theirs, target in report([p for p in SNAPSHOT_PAIRS if only in p[0]]):
            goal = f"target <= {target:.2f}" if target else "no target: the cost recorded"
            print(f"ratio {ours_name} / {theirs_name}: {m_ours / m_theirs:.2f}  ({goal})")
        return
    if "--fit-only" in sys.argv:  # fit, fit with shapes and suggest alone
        for ours_name, m_ours, theirs_name, m_theirs, target in report(FIT_PAIRS):
            print(f"ratio {ours_name} / {theirs_name}: {m_ours / m_theirs:.2f}  (target <= {target:.2f})")
        return
    if "--views-only" in sys.argv:  # the alerts and latest pairs alone (they build their own history)
        prepare_views()
        results = report(VIEW_PAIRS)
        for ours_name, m_ours, theirs_name, m_theirs, _ in results:
            print(f"ratio {ours_name} / {theirs_name}: {m_ours / m_theirs:.2f}  (no target: the cost recorded)")
        return
    plans = psql("EXPLAIN SELECT sum(health_score.score('bench', a)) FROM bench.accounts a;")
    print("plan of sum(score('bench', row)) over 1M rows:", "Gather" if "Gather" in plans else "no Gather", "\n")
    check_equal()
    if history:
        check_history()
        check_snapshot_by_hand()
    print()
    print(f"{'query':34} {'median ms':>10} {'runs (ms)':>40}")
    results = report(PAIRS)
    (t_base,) = time_queries([BASELINE[1]])
    m_base = statistics.median(t_base)
    print(f"{BASELINE[0]:34} {m_base:10.1f} {' '.join(f'{t:.0f}' for t in t_base):>40}")
    if history:
        store_ten_snapshots()
        results += report(SNAPSHOT_PAIRS)
        store_one_snapshot()
        results += report(HISTORY_PAIRS)
        results += report(FIT_PAIRS)
        prepare_views()
        results += report(VIEW_PAIRS)
    print()
    for ours_name, m_ours, theirs_name, m_theirs, target in results:
        goal = f"target <= {target:.2f}" if target else "no target: the cost recorded"
        print(f"ratio {ours_name} / {theirs_name}: {m_ours / m_theirs:.2f}  ({goal})")
    print(f"ratio hand-written SQL over columns / bare sum(column): {results[0][3] / m_base:.1f}")


main()
