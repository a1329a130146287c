//! `suggest` in the core, without the server: 1M rows drawn as bench/fit.sql draws
//! `bench.suggest_accounts` (the benchmark model's eight leaves, 16 numeric and 4 text
//! candidates, a fifth held out), or the rows of a CSV file exported from that table (in the
//! column order of the `\copy` in docs/performance.md) when HS_SUGGEST_CSV names one.
//! `cargo bench -p health_score_core --bench suggest`. Prints the times on one thread and on
//! HS_THREADS (2) and the ranking; asserts only that the threads change nothing. The SQL benchmark, with its ratio, is `bash bench/run.sh --fit-only`.
use std::time::Instant;

use health_score_core::parallel::with_threads;
use health_score_core::shapes::{encode_observations, Observation};
use health_score_core::suggest::{suggest, Candidate, SuggestData, SuggestOptions};
use health_score_core::{Json, Model};

fn main() {
    let sql = include_str!("../../../bench/model.sql");
    let start = sql.find("set_model('bench', '").expect("model") + "set_model('bench', '".len();
    let end = start + sql[start..].find("}');").expect("end") + 1;
    let model_json: serde_json::Value = serde_json::from_str(&sql[start..end]).expect("parses");
    let json = Json::from(&model_json);
    let model = Model::parse(&json).expect("valid");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut u = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let csv = std::env::var("HS_SUGGEST_CSV").ok();
    let n: usize = if csv.is_some() { 0 } else { 1_000_000 };
    let numeric: Vec<String> = (1..=12)
        .map(|i| format!("n{i}"))
        .chain(["seats", "arr", "age_days", "integrations"].map(String::from))
        .collect();
    let text = ["has_sso", "region", "tier", "channel"];
    let mut candidates: Vec<Candidate> =
        numeric.iter().map(|c| Candidate { column: c.clone(), categorical: false }).collect();
    candidates.extend(text.iter().map(|c| Candidate { column: c.to_string(), categorical: true }));
    let mut d = SuggestData::new(&model, numeric.len(), text.len());
    let leaves = model.leaves();
    let mut bytes = Vec::new();
    let cats = ["promoter", "passive", "detractor"];
    let regions = ["north", "south", "east", "west", "central"];
    let tiers = ["smb", "mid", "enterprise"];
    let channels = ["web", "partner", "sales", "event"];
    let t0 = Instant::now();
    for i in 0..n {
        let logins = (u() * 600.0).floor();
        let active = u();
        let adoption = u();
        let dsl = (u() * 90.0).floor();
        let nps = cats[(u() * 3.0) as usize];
        let tickets = (u() * 12.0).floor();
        let csat = 1.0 + u() * 4.0;
        let overdue = (u() * 120.0).floor();
        let z = 1.5 - 0.004 * logins - 1.2 * adoption + 0.02 * dsl + 0.15 * tickets - 0.4 * csat;
        let churned = u() < 1.0 / (1.0 + (-z).exp());
        let obs: Vec<Observation> = leaves
            .iter()
            .map(|&l| {
                let key = &model.inputs[model.nodes[l].slot.unwrap()].key;
                match key.as_str() {
                    "nps" => Observation::Category(nps.into()),
                    "logins" => Observation::Number(logins),
                    "active_share" => Observation::Number(active),
                    "adoption" => Observation::Number(adoption),
                    "days_since_login" => Observation::Number(dsl),
                    "open_tickets" => Observation::Number(tickets),
                    "csat" => Observation::Number(csat),
                    "overdue_days" => Observation::Number(overdue),
                    k => panic!("{k}"),
                }
            })
            .collect();
        encode_observations(&obs, &mut bytes);
        let nums = [
            Some(logins * 0.1 + u() * 20.0),
            Some(u()),
            if u() < 0.1 { None } else { Some(u() * 100.0) },
            Some(csat + u()),
            Some(u() * 1000.0),
            Some((u() * 10.0).floor()),
            Some(u() - 0.5),
            Some(if churned { u() * 0.9 + 0.1 } else { u() }),
            Some((u() * 5.0).exp()),
            Some(tickets + (u() * 3.0).floor()),
            Some(u() * 2.0),
            Some((u() * 100.0).floor()),
            Some((1.0 + u() * 400.0).floor()),
            Some(1000.0 + u() * 99000.0),
            Some((u() * 2000.0).floor()),
            Some((u() * 12.0).floor()),
        ];
        let t = [
            Some(if u() < 0.3 { "true" } else { "false" }),
            Some(regions[(u() * 5.0) as usize]),
            Some(tiers[(u() * 3.0) as usize]),
            Some(channels[(u() * 4.0) as usize]),
        ];
        d.add(&bytes, &nums, &t, churned, (i as u64).wrapping_mul(0x9E37_79B9) % 10 < 2, 20).unwrap();
    }
    if let Some(path) = csv {
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let f: Vec<&str> = line.split(',').map(|x| x.trim_matches('"')).collect();
            let num = |i: usize| f[i].parse::<f64>().unwrap();
            let obs: Vec<Observation> = leaves
                .iter()
                .map(|&l| {
                    let key = &model.inputs[model.nodes[l].slot.unwrap()].key;
                    match key.as_str() {
                        "nps" => Observation::Category(f[5].into()),
                        "logins" => Observation::Number(num(1)),
                        "active_share" => Observation::Number(num(2)),
                        "adoption" => Observation::Number(num(3)),
                        "days_since_login" => Observation::Number(num(4)),
                        "open_tickets" => Observation::Number(num(6)),
                        "csat" => Observation::Number(num(7)),
                        "overdue_days" => Observation::Number(num(8)),
                        k => panic!("{k}"),
                    }
                })
                .collect();
            encode_observations(&obs, &mut bytes);
            let nums: Vec<Option<f64>> = (10..26).map(|i| f[i].parse::<f64>().ok()).collect();
            let t = [Some(f[26]), Some(f[27]), Some(f[28]), Some(f[29])];
            d.add(&bytes, &nums, &t, f[9] == "1", f[30] == "1", 20).unwrap();
        }
    }
    println!("{} rows read in {:?}", d.train.rows() + d.holdout.rows(), t0.elapsed());
    let options = SuggestOptions::from_json(&Json::from(&serde_json::json!({})), &model).expect("options");
    // the machine is shared: the median of three runs, on one thread and on HS_THREADS (2)
    let threads: usize = std::env::var("HS_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    let mut found = None;
    for threads in [1, threads] {
        let mut runs = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let run = with_threads(threads, || suggest(&json, &model, &candidates, &d, &options).expect("suggests"));
            runs.push(t.elapsed());
            assert!(found.as_ref().is_none_or(|f| *f == run), "the same suggestions on any number of threads");
            found = Some(run);
        }
        runs.sort();
        println!("suggest on {threads} thread(s): median {:?} of {runs:?}", runs[1]);
    }
    for s in found.expect("a run").suggestions {
        println!("  {} {} {:.6} exact={} leak={}", s.rank, s.column, s.holdout_auc, s.exact, s.leak);
    }
}
