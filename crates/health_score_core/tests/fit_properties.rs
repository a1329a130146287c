//! `fit`'s solver against a plainly written reference (Newton's method over every active set),
//! its determinism under shuffled rows, and the bound.

mod fit_reference;

use fit_reference::reference;
use health_score_core::fit::{fit, UPPER};
use proptest::prelude::*;

/// Designs and outcomes from a logistic process with the given coefficients; `u` are the
/// uniform draws, values quantized so that equal rows occur.
fn problem(k: usize, cells: &[f64], u: &[f64], coef: &[f64]) -> (Vec<Vec<f64>>, Vec<bool>) {
    let rows: Vec<Vec<f64>> =
        cells.chunks_exact(k).map(|c| c.iter().map(|v| (v * 8.0).round() / 8.0).collect()).collect();
    let y = rows
        .iter()
        .zip(u)
        .map(|(r, &ui)| {
            ui < 1.0 / (1.0 + (-(coef[0] + r.iter().zip(&coef[1..]).map(|(a, b)| a * b).sum::<f64>())).exp())
        })
        .collect();
    (rows, y)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-8 * a.abs().max(b.abs()).max(0.1)
}

fn classes_ok(y: &[bool]) -> bool {
    let c = y.iter().filter(|&&v| v).count();
    c >= 10 && y.len() - c >= 10
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, max_global_rejects: 100_000, .. ProptestConfig::default() })]

    #[test]
    fn the_fit_is_the_reference_optimum(
        k in 1usize..=4,
        cells in prop::collection::vec(0.0f64..=1.0, 800),
        u in prop::collection::vec(0.0f64..1.0, 200),
        coef in prop::collection::vec(-5.0f64..3.0, 5),
        l2 in prop::sample::select(vec![1e-4, 1e-2, 0.3]),
    ) {
        let rows = 60 + (cells.len() / k - 60).min(140);
        let (x, y) = problem(k, &cells[..rows * k], &u[..rows], &coef);
        prop_assume!(classes_ok(&y));
        let flat: Vec<f64> = x.iter().flatten().copied().collect();
        let s = fit(k, &flat, &y, l2).unwrap();
        let (b, beta) = reference(&x, &y, l2);
        prop_assert!(close(s.intercept, b), "intercept {} vs {}", s.intercept, b);
        #[allow(clippy::needless_range_loop)] // j indexes three slices at once
        for j in 0..k {
            prop_assert!(close(s.beta[j], beta[j]), "beta[{}] {} vs {}", j, s.beta[j], beta[j]);
            prop_assert!(s.beta[j] <= UPPER);
            prop_assert_eq!(s.at_bound[j], beta[j] == UPPER);
        }
        prop_assert!(s.gradient_norm < 1e-10);
    }

    #[test]
    fn row_order_does_not_change_the_weights(
        cells in prop::collection::vec(0.0f64..=1.0, 300),
        u in prop::collection::vec(0.0f64..1.0, 100),
        coef in prop::collection::vec(-5.0f64..3.0, 4),
        seed in any::<u64>(),
    ) {
        let (x, y) = problem(3, &cells, &u, &coef);
        prop_assume!(classes_ok(&y));
        let mut order: Vec<usize> = (0..y.len()).collect();
        // a Fisher–Yates shuffle by a fixed LCG
        let mut state = seed;
        for i in (1..order.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (state >> 33) as usize % (i + 1));
        }
        let flat: Vec<f64> = x.iter().flatten().copied().collect();
        let shuffled: Vec<f64> = order.iter().flat_map(|&i| x[i].iter().copied()).collect();
        let y2: Vec<bool> = order.iter().map(|&i| y[i]).collect();
        let a = fit(3, &flat, &y, 1e-4).unwrap();
        let b = fit(3, &shuffled, &y2, 1e-4).unwrap();
        prop_assert_eq!(a, b);
    }
}

#[test]
fn an_input_with_the_opposite_effect_sits_at_the_bound() {
    let cells: Vec<f64> = (0..400).map(|i| ((i * 37) % 17) as f64 / 16.0).collect();
    let u: Vec<f64> = (0..200).map(|i| ((i * 7919) % 1000) as f64 / 1000.0).collect();
    // the second leaf raises churn: its health weight would be negative, so it is held at 1e-6
    let (x, y) = problem(2, &cells, &u, &[0.0, -4.0, 4.0]);
    let flat: Vec<f64> = x.iter().flatten().copied().collect();
    let s = fit(2, &flat, &y, 1e-4).unwrap();
    assert!(s.at_bound[1] && s.beta[1] == UPPER, "{s:?}");
    assert!(!s.at_bound[0] && s.beta[0] < -1.0, "{s:?}");
    let (b, beta) = reference(&x, &y, 1e-4);
    assert!(close(s.intercept, b) && close(s.beta[0], beta[0]), "{s:?} {b} {beta:?}");
}

/// The most leaves a model fits (the limit): too many for the reference's active-set
/// enumeration, so the optimum is checked by its conditions, with the gradient summed plainly.
#[test]
fn two_hundred_fifty_six_leaves_reach_the_constrained_optimum() {
    const LEAVES: usize = 256;
    const ROWS: usize = 2500;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut uniform = move || {
        // xorshift64*: a fixed, dependency-free stream
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        (seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    // most leaves lower churn, one in five raises it (and must sit at the bound)
    let coef: Vec<f64> = (0..=LEAVES)
        .map(|j| {
            if j == 0 {
                1.0
            } else if j % 5 == 0 {
                0.02
            } else {
                -0.03
            }
        })
        .collect();
    let cells: Vec<f64> = (0..ROWS * LEAVES).map(|_| uniform()).collect();
    let u: Vec<f64> = (0..ROWS).map(|_| uniform()).collect();
    let (x, y) = problem(LEAVES, &cells, &u, &coef);
    assert!(classes_ok(&y));
    let flat: Vec<f64> = x.iter().flatten().copied().collect();
    let l2 = 1e-4;
    let s = fit(LEAVES, &flat, &y, l2).unwrap();

    let n = ROWS as f64;
    let mut gradient = vec![0.0; LEAVES + 1];
    for (row, &churned) in x.iter().zip(&y) {
        let eta = s.intercept + row.iter().zip(&s.beta).map(|(a, b)| a * b).sum::<f64>();
        let residual = 1.0 / (1.0 + (-eta).exp()) - if churned { 1.0 } else { 0.0 };
        gradient[0] += residual / n;
        for (g, v) in gradient[1..].iter_mut().zip(row) {
            *g += residual * v / n;
        }
    }
    assert!(gradient[0].abs() < 1e-8, "intercept gradient {}", gradient[0]);
    let mut at_bound = 0;
    for j in 0..LEAVES {
        let g = gradient[j + 1] + l2 * s.beta[j];
        assert!(s.beta[j] <= UPPER, "beta[{j}] = {}", s.beta[j]);
        if s.at_bound[j] {
            // lowering a weight held at the bound would not lower the objective
            assert!(s.beta[j] == UPPER && g <= 1e-8, "leaf {j} at the bound with gradient {g}");
            at_bound += 1;
        } else {
            assert!(g.abs() < 1e-8, "leaf {j}: gradient {g} at beta {}", s.beta[j]);
        }
    }
    assert!(at_bound >= LEAVES / 10, "only {at_bound} leaves at the bound");
}
