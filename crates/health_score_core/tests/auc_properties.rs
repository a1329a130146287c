//! The AUC state against plain pair counting, in any order and split in any way.

use health_score_core::AucState;
use proptest::prelude::*;

/// P(churned < retained) + ½·P(tie), by looking at every pair.
fn pairwise(rows: &[(f64, bool)]) -> Option<f64> {
    let churned: Vec<f64> = rows.iter().filter(|r| r.1 && r.0.is_finite()).map(|r| r.0).collect();
    let retained: Vec<f64> = rows.iter().filter(|r| !r.1 && r.0.is_finite()).map(|r| r.0).collect();
    if churned.is_empty() || retained.is_empty() {
        return None;
    }
    let (mut twice_wins, mut pairs) = (0u128, 0u128);
    for c in &churned {
        for r in &retained {
            twice_wins += if c < r {
                2
            } else if c == r {
                1
            } else {
                0
            };
            pairs += 1;
        }
    }
    Some(twice_wins as f64 / (2 * pairs) as f64)
}

fn state_of(rows: &[(f64, bool)]) -> AucState {
    let mut s = AucState::default();
    for &(score, churned) in rows {
        s.add(score, churned).unwrap();
    }
    s
}

#[test]
fn worked_examples() {
    // churned 1, 2; retained 2, 3: pairs (1,2) (1,3) (2,3) win, (2,2) ties: (3 + 0.5) / 4
    assert_eq!(state_of(&[(1.0, true), (2.0, true), (2.0, false), (3.0, false)]).finish(), Some(0.875));
    // a churn probability instead of a health score gives 1 − AUC
    assert_eq!(state_of(&[(1.0, false), (2.0, false), (2.0, true), (3.0, true)]).finish(), Some(0.125));
    // −0 equals 0; NaN and infinities are ignored; one class only: none
    assert_eq!(state_of(&[(-0.0, true), (0.0, false), (f64::NAN, true), (f64::INFINITY, false)]).finish(), Some(0.5));
    assert_eq!(state_of(&[(1.0, true), (2.0, true)]).finish(), None);
    assert_eq!(AucState::default().finish(), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn equals_pair_counting_in_any_order_and_split(
        rows in prop::collection::vec(((0u8..12).prop_map(|v| v as f64 / 2.0 - 1.0), any::<bool>()), 0..80),
        seed in any::<u64>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let expected = pairwise(&rows);
        prop_assert_eq!(state_of(&rows).finish(), expected);
        let mut shuffled = rows.clone();
        let mut r = seed | 1;
        for i in (1..shuffled.len()).rev() {
            r ^= r << 13; r ^= r >> 7; r ^= r << 17;
            shuffled.swap(i, (r % (i as u64 + 1)) as usize);
        }
        let k = cut.index(shuffled.len() + 1);
        let mut combined = AucState::from_bytes(&state_of(&shuffled[..k]).to_bytes().unwrap()).unwrap();
        combined.combine(&AucState::from_bytes(&state_of(&shuffled[k..]).to_bytes().unwrap()).unwrap()).unwrap();
        prop_assert_eq!(combined.finish(), expected);
    }
}
