//! Micro-benchmark of the pure scoring core: nanoseconds per evaluation of the benchmark model
//! (bench/model.sql) over varied inputs. `cargo bench -p health_score_core --bench core`. Prints, asserts nothing.

use std::borrow::Cow;
use std::hint::black_box;
use std::time::Instant;

use health_score_core::{Json, Model, Scratch, Value};

fn main() {
    let sql = include_str!("../../../bench/model.sql");
    let start = sql.find("set_model('bench', '").expect("model in bench/model.sql") + "set_model('bench', '".len();
    let end = start + sql[start..].find("}');").expect("end of model") + 1;
    let model_json: serde_json::Value = serde_json::from_str(&sql[start..end]).expect("model parses");
    let model = Model::parse(&Json::from(&model_json)).expect("valid model");
    // the distributions of bench/accounts.sql, from a fixed xorshift sequence: random enough that
    // branch prediction cannot learn the rows, as in a real table
    let cats = ["promoter", "passive", "detractor"];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let rows: Vec<Vec<Value<'static>>> = (0..100_000)
        .map(|_| {
            model
                .inputs
                .iter()
                .map(|slot| match slot.key.as_str() {
                    "nps" => Value::Text(Cow::Borrowed(cats[(uniform() * 3.0) as usize])),
                    "logins" => Value::number_from((uniform() * 600.0).floor()),
                    "days_since_login" => Value::number_from((uniform() * 90.0).floor()),
                    "open_tickets" => Value::number_from((uniform() * 12.0).floor()),
                    "csat" => Value::number_from(1.0 + uniform() * 4.0),
                    "overdue_days" => Value::number_from((uniform() * 120.0).floor()),
                    _ => Value::number_from(uniform()),
                })
                .collect()
        })
        .collect();
    let mut scratch = Scratch::default();
    let rounds = 5;
    let mut total = 0.0;
    // the machine is shared: report the best and the median of several repetitions
    let mut runs: Vec<f64> = (0..9)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..rounds {
                for row in &rows {
                    let s = model.evaluate_into::<false>(black_box(row), &mut scratch).expect("scores");
                    total += s.score.unwrap_or(0.0);
                }
            }
            t0.elapsed().as_nanos() as f64 / (rounds * rows.len()) as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    println!(
        "core evaluate_into, bench model (8 leaves, 4 groups): best {:.1} ns, median {:.1} ns per input (checksum {total:.3})",
        runs[0],
        runs[runs.len() / 2]
    );
}
