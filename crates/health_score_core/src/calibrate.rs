//! Calibration: the churn probability `1 / (1 + exp(-(a + b · score)))` fitted to outcomes by
//! L2-regularised logistic regression (the slope penalised, so that it stays finite when the
//! score separates the classes), solved by Newton's method with step halving.

/// Minimises `(1/N) Σ logloss(y, σ(a + b s)) + (l2 / 2) b²` over the scores of churned (y = 1)
/// and retained (y = 0) accounts. None when either class is empty or the fit does not settle.
pub fn calibrate(churned: &[f64], retained: &[f64], l2: f64) -> Option<(f64, f64)> {
    if churned.is_empty() || retained.is_empty() || l2.is_nan() || l2 <= 0.0 {
        return None;
    }
    let n = (churned.len() + retained.len()) as f64;
    let rate = churned.len() as f64 / n;
    let (mut a, mut b) = ((rate / (1.0 - rate)).ln(), 0.0);
    let objective = |a: f64, b: f64| {
        let mut sum = 0.0;
        for &s in churned {
            sum += softplus(-(a + b * s));
        }
        for &s in retained {
            sum += softplus(a + b * s);
        }
        sum / n + 0.5 * l2 * b * b
    };
    let mut current = objective(a, b);
    for _ in 0..200 {
        // gradient and Hessian of the mean log-loss, plus the penalty. The Hessian is kept as
        // its weights' sum, weighted mean score and weighted spread about that mean (West's
        // update): when nearly separable classes put all the weight on a few close scores,
        // Σw·Σws² − (Σws)² cancels to noise and Newton's steps lose their way.
        let (mut ga, mut gb, mut sum_w, mut mean_s, mut spread) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (scores, y) in [(churned, 1.0), (retained, 0.0)] {
            for &s in scores {
                let p = sigmoid(a + b * s);
                let w = p * (1.0 - p);
                ga += p - y;
                gb += (p - y) * s;
                if w > 0.0 {
                    sum_w += w;
                    let delta = s - mean_s;
                    mean_s += delta * w / sum_w;
                    spread += w * delta * (s - mean_s);
                }
            }
        }
        let (ga, gb) = (ga / n, gb / n + l2 * b);
        if (ga * ga + gb * gb).sqrt() < 1e-12 {
            return Some((a, b));
        }
        // H = [[haa, haa·m], [haa·m, haa·m² + v]] with haa = Σw/n, m the weighted mean score and
        // v = spread/n + l2 (the Schur complement, positive thanks to the penalty)
        let (haa, v) = (sum_w / n, spread / n + l2);
        if haa.is_nan() || haa <= 0.0 || v.is_nan() || v <= 0.0 {
            return None;
        }
        let db = (gb - mean_s * ga) / v;
        let da = ga / haa - mean_s * db;
        // Newton's decrement (twice the decrease the step promises) below what the objective
        // resolves: the line search can no longer tell better from worse (the intercept can be
        // in the thousands when the score separates the classes), and this close to the optimum
        // full Newton steps converge on their own; the gradient test above ends it
        if ga * da + gb * db < 1e-12 * (1.0 + current.abs()) {
            (a, b) = (a - da, b - db);
            current = objective(a, b);
            continue;
        }
        let mut step = 1.0;
        loop {
            let (na, nb) = (a - step * da, b - step * db);
            let next = objective(na, nb);
            if next <= current + 1e-15 * current.abs() || step < 1e-10 {
                (a, b, current) = (na, nb, next);
                break;
            }
            step *= 0.5;
        }
    }
    // settled to rounding even if the gradient test was never met exactly
    Some((a, b)).filter(|(a, b)| a.is_finite() && b.is_finite())
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// ln(1 + e^x) without overflow.
fn softplus(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}
