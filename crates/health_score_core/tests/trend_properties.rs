//! The trend state against a direct two-pass computation, in any order and split in any way.

use health_score_core::TrendState;
use proptest::prelude::*;

const DAY: i64 = 86_400_000_000;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The summary computed the obvious way, from all points at once.
struct Direct {
    first_at: i64,
    first_score: f64,
    last_at: i64,
    last_score: f64,
    slope: Option<f64>,
    min: f64,
    max: f64,
}

fn direct(points: &[(i64, f64)]) -> Direct {
    let first_at = points.iter().map(|p| p.0).min().unwrap();
    let last_at = points.iter().map(|p| p.0).max().unwrap();
    let mean_at = |t: i64| {
        let tied: Vec<f64> = points.iter().filter(|p| p.0 == t).map(|p| p.1).collect();
        tied.iter().sum::<f64>() / tied.len() as f64
    };
    let n = points.len() as f64;
    let xs: Vec<f64> = points.iter().map(|p| p.0 as f64 / DAY as f64).collect();
    let mx = xs.iter().sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let sxy: f64 = xs.iter().zip(points).map(|(x, p)| (x - mx) * (p.1 - my)).sum();
    Direct {
        first_at,
        first_score: mean_at(first_at),
        last_at,
        last_score: mean_at(last_at),
        slope: (first_at != last_at).then(|| sxy / sxx),
        min: points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
        max: points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max),
    }
}

fn state_of(points: &[(i64, f64)]) -> TrendState {
    let mut s = TrendState::default();
    for &(at, score) in points {
        s.add(at, score).unwrap();
    }
    s
}

#[test]
fn a_worked_example() {
    // days 0, 1, 2 (two points on day 2) from 2026-01-01: scores 80, 70, 60 and 64
    let t0 = 820_454_400_000_000; // 2026-01-01 in microseconds since 2000-01-01
    let s = state_of(&[(t0 + 2 * DAY, 60.0), (t0, 80.0), (t0 + DAY, 70.0), (t0 + 2 * DAY, 64.0)]);
    let t = s.finish().unwrap();
    assert_eq!(t.n, 4);
    assert_eq!((t.first_at, t.first_score), (t0, 80.0));
    assert_eq!((t.last_at, t.last_score), (t0 + 2 * DAY, 62.0));
    assert_eq!(t.delta, -18.0);
    assert!(close(t.pct_change.unwrap(), -22.5));
    // x = 0, 1, 2, 2 (mean 1.25), y = 80, 70, 60, 64 (mean 68.5):
    // Sxy = (-1.25)(11.5) + (-0.25)(1.5) + (0.75)(-8.5) + (0.75)(-4.5) = -24.5, Sxx = 2.75
    assert!(close(t.slope_per_day.unwrap(), -24.5 / 2.75), "{:?}", t.slope_per_day);
    assert_eq!((t.min_score, t.max_score), (60.0, 80.0));
}

#[test]
fn edge_cases() {
    assert_eq!(TrendState::default().finish(), None);
    // one time only: no slope; a first score of 0: no percentage
    let t = state_of(&[(5 * DAY, 0.0), (5 * DAY, 0.0)]).finish().unwrap();
    assert_eq!((t.n, t.slope_per_day, t.pct_change), (2, None, None));
    let mut s = TrendState::default();
    assert!(s.add(0, f64::NAN).is_err());
    assert!(s.add(i64::MAX, 1.0).is_err());
    assert_eq!(s.n, 0);
}

fn series() -> impl Strategy<Value = Vec<(i64, f64)>> {
    // times within a few years, on whole days or anywhere in them; scores in [0, 100]
    let point = (0i64..2000, prop::bool::ANY, 0i64..DAY, 0.0f64..100.0).prop_map(|(day, exact, micros, score)| {
        (820_000_000_000_000 + day * DAY + if exact { 0 } else { micros }, score)
    });
    prop::collection::vec(point, 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn agrees_with_direct_computation_in_any_order_and_split(
        points in series(),
        seed in any::<u64>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let d = direct(&points);
        // a shuffled order, split in two parts combined (as parallel workers do), through
        // the serialized form
        let mut shuffled = points.clone();
        let mut r = seed | 1;
        for i in (1..shuffled.len()).rev() {
            r ^= r << 13; r ^= r >> 7; r ^= r << 17;
            shuffled.swap(i, (r % (i as u64 + 1)) as usize);
        }
        let k = cut.index(shuffled.len() + 1);
        let mut combined = TrendState::from_bytes(&state_of(&shuffled[..k]).to_bytes()).unwrap();
        combined.combine(&TrendState::from_bytes(&state_of(&shuffled[k..]).to_bytes()).unwrap());
        for state in [state_of(&points), combined] {
            let t = state.finish().unwrap();
            prop_assert_eq!(t.n, points.len() as u64);
            prop_assert_eq!((t.first_at, t.last_at), (d.first_at, d.last_at));
            prop_assert!(close(t.first_score, d.first_score) && close(t.last_score, d.last_score));
            prop_assert!(close(t.delta, d.last_score - d.first_score));
            prop_assert_eq!((t.min_score, t.max_score), (d.min, d.max));
            match (t.slope_per_day, d.slope) {
                (Some(a), Some(b)) => prop_assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "slope {} vs {}", a, b),
                (a, b) => prop_assert_eq!(a, b),
            }
        }
    }
}
