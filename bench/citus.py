#!/usr/bin/env python3
"""Times queries over a distributed table against the same queries over a plain copy on the
coordinator (bench/citus.sh sets both up), and prints each plan's shape: where the scoring and
the aggregates run. On one machine the workers share its cores, so the ratios compare plan
shapes, not scale. Before timing, each pair is checked to return the same rows."""
import re
import statistics
import subprocess
import sys

PORT, DB, SOCKET_DIR = sys.argv[1:4]
ROUNDS = 5

QUERIES = [
    ("one scoring pass, registered model",
     "SELECT count(health_score.score('bench', a)) FROM {t} a"),
    ("auc by region (not the distribution column)",
     "SELECT region, health_score.auc(health_score.score('bench', a), a.churned) FROM {t} a GROUP BY 1 ORDER BY 1"),
    ("trend by region over 1M points",
     "SELECT region, (t).n, round((t).slope_per_day::numeric, 6) FROM "
     "(SELECT region, health_score.trend(a.at, a.logins) AS t FROM {t} a GROUP BY 1) s ORDER BY 1"),
    # grouped by the distribution column, Citus runs the whole aggregate on the workers, which
    # have no registry: the model goes inline (docs/scale-out.md)
    ("parent_health by region of 1M children",
     "SELECT region, (p).children, round((p).score::numeric, 6) FROM (SELECT region, health_score.parent_health("
     "'{model}'::jsonb, a.id::text, health_score.score('bench', a), 1 + a.id % 3) AS p FROM {t} a GROUP BY 1) s ORDER BY 1"),
    ("fit's aggregate over 1M rows (designs, then the solve)",
     "SELECT md5(health_score_internal._fit(health_score_internal._fit_row('{model}'::jsonb, false, a), a.churned, NULL)) "
     "FROM {t} a"),
    ("score_agg by account of 1M (key, value) rows",
     "SELECT count(s) FROM (SELECT a.id, health_score.score_agg('{model}'::jsonb, k.key, CASE k.key WHEN 'logins' "
     "THEN a.logins ELSE a.adoption END) AS s FROM {t} a, (VALUES ('logins'), ('adoption')) k(key) "
     "WHERE a.id % 2 = 0 GROUP BY 1) x"),
]


def psql(script, db=DB):
    out = subprocess.run(["psql", "-X", "-h", SOCKET_DIR, "-p", PORT, "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1",
                          "-qAt"], input=script, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"psql failed:\n{out.stderr}")
    return out.stdout


def plan_shape(query):
    plan = psql(f"EXPLAIN (VERBOSE) {query}")
    tasks = re.search(r"Task Count: (\d+)", plan)
    shape = [f"{tasks.group(1)} tasks" if tasks else "no distributed plan"]
    if "worker_partial_agg" in plan:
        shape.append("partial aggregates on the workers")
    elif tasks and re.search(r"health_score(_internal)?\.(score_agg|auc|trend|parent_health|_fit)\(", plan):
        shape.append("whole aggregates on the workers (grouped by the distribution column)")
    if "health_score.score(" in plan or "_score_columns" in plan:
        shape.append("scoring in the task queries" if tasks else "scoring on the coordinator")
    return ", ".join(shape)


def main():
    model = psql("SELECT config FROM health_score.models WHERE name = 'bench' ORDER BY version DESC LIMIT 1").strip()
    print(f"{'query':48} {'distributed ms':>15} {'one server ms':>14} {'ratio':>6}  plan of the distributed query")
    for name, q in QUERIES:
        dist, local = (q.format(t=t, model=model.replace("'", "''")) for t in ("bench.accounts_dist", "bench.accounts"))
        if psql(dist) != psql(local):
            sys.exit(f"MISMATCH: {name}")
        script = ""
        for _ in range(ROUNDS + 1):
            for query in (dist, local):
                script += "\\timing on\n" + query + ";\n\\timing off\n"
        times = [float(t) for t in re.findall(r"Time: ([0-9.]+) ms", psql(script))][2:]
        d, l = statistics.median(times[0::2]), statistics.median(times[1::2])
        print(f"{name:48} {d:15.0f} {l:14.0f} {d / l:6.2f}  {plan_shape(dist)}")
    snapshots()
    print("(one machine: the coordinator and both workers share its cores; the ratios compare plan shapes, not scale)")


def snapshots():
    """A snapshot of the distributed accounts into the distributed history (health_score.distribute)
    against the same snapshot of the plain table in a database of the same server without Citus
    (bench/citus.sh fills both): each round a new day of one month, both sides alike."""
    single = DB + "_single"
    psql("SET client_min_messages = warning; SELECT health_score.distribute()")
    times = {DB: [], single: []}
    for day in range(1, ROUNDS + 2):
        for db, source in ((DB, "bench.accounts_dist"), (single, "bench.accounts")):
            out = psql("SET client_min_messages = warning;\n\\timing on\n"
                       f"SELECT health_score.snapshot('bench', '{source}', 'id', '2026-01-{day:02}', keep_inputs => false);",
                       db)
            times[db].append(float(re.findall(r"Time: ([0-9.]+) ms", out)[-1]))
    check = ("SELECT count(*), sum(round(score::numeric, 9)), sum(band_rank) FROM health_score.latest; "
             "SELECT count(*), sum(round(score::numeric, 9)) FROM health_score.scores WHERE scored_at = '2026-01-03'")
    if psql(check) != psql(check, single):
        sys.exit("MISMATCH: the distributed history differs from the single server's")
    d, l = statistics.median(times[DB][1:]), statistics.median(times[single][1:])
    print(f"{'snapshot of 1M accounts (keep_inputs => false)':48} {d:15.0f} {l:14.0f} {d / l:6.2f}  "
          "scored on the workers, rows sent to their entity's shard, current state on its shards")


main()
