//! Calibration: the fitted (a, b) is where the regularised log-loss has zero gradient, checked
//! with plain sums, and a low score means a higher churn probability when low scores churn.

use health_score_core::calibrate::calibrate;
use proptest::prelude::*;

fn gradient(churned: &[f64], retained: &[f64], l2: f64, a: f64, b: f64) -> (f64, f64) {
    let n = (churned.len() + retained.len()) as f64;
    let p = |s: f64| 1.0 / (1.0 + (-(a + b * s)).exp());
    let ga = churned.iter().map(|&s| p(s) - 1.0).chain(retained.iter().map(|&s| p(s))).sum::<f64>() / n;
    let gb =
        churned.iter().map(|&s| (p(s) - 1.0) * s).chain(retained.iter().map(|&s| p(s) * s)).sum::<f64>() / n + l2 * b;
    (ga, gb)
}

#[test]
fn separable_classes_still_give_a_finite_fit() {
    let churned = [10.0, 20.0, 30.0];
    let retained = [70.0, 80.0, 90.0];
    let (a, b) = calibrate(&churned, &retained, 1e-4).unwrap();
    assert!(a.is_finite() && b < 0.0, "{a} {b}");
    let (ga, gb) = gradient(&churned, &retained, 1e-4, a, b);
    assert!(ga.abs() < 1e-9 && gb.abs() < 1e-9, "{ga} {gb}");
    assert_eq!(calibrate(&churned, &[], 1e-4), None);
}

#[test]
fn nearly_separable_classes_on_close_scores_reach_a_stationary_point() {
    // the churned account scores just above a retained one: the weight sits on two scores
    // 0.06 apart, where the Hessian's determinant cancels unless computed about their mean
    let churned = [76.47218950065522];
    let retained = [32.79742558691468, 37.73557861075353, 76.41193425029803, 74.346883029675];
    let (a, b) = calibrate(&churned, &retained, 1e-4).unwrap();
    let (ga, gb) = gradient(&churned, &retained, 1e-4, a, b);
    assert!(ga.abs() < 1e-8 && gb.abs() < 1e-8, "gradient {ga} {gb} at {a} {b}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn the_fit_is_a_stationary_point(
        churned in prop::collection::vec(0.0f64..100.0, 1..40),
        retained in prop::collection::vec(0.0f64..100.0, 1..40),
    ) {
        let (a, b) = calibrate(&churned, &retained, 1e-4).unwrap();
        let (ga, gb) = gradient(&churned, &retained, 1e-4, a, b);
        prop_assert!(ga.abs() < 1e-8 && gb.abs() < 1e-8, "gradient {} {} at {} {}", ga, gb, a, b);
    }
}
