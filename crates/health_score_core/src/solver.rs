//! The bound-constrained Newton solver shared by the fits (weights in `fit`, weights and
//! shapes in `shapes`): projected Newton with Bertsekas's (1982) active set, a backtracking
//! line search, and a polish of a few steps once the projected gradient is below tolerance.
//! The problem supplies its objective with gradient and Hessian; the solver knows only bounds.

use super::error::Error;

/// The fit stops when the projected gradient's norm is below this.
pub const TOLERANCE: f64 = 1e-10;
const MAX_ITERATIONS: usize = 200;
/// Variables one solve takes: its Hessian is dense, d × d doubles (4096 of them: 128 MB). A
/// model has far fewer leaves and knots; this refuses a state built by hand (the fits' final
/// functions read serialized states) before its matrices could exhaust memory.
pub const MAX_VARIABLES: usize = 4096;

/// A smooth convex objective: its value and gradient at θ, and its Hessian (row-major,
/// d × d) there. The solver asks for the Hessian only where it steps from, which the last point
/// of a solve is not: a fit of one or two Newton steps saves a third to half of its Hessians.
pub trait Objective {
    /// The value and gradient at θ, keeping what `hessian` needs of this θ.
    fn value_gradient(&self, theta: &[f64]) -> (f64, Vec<f64>);
    /// The Hessian at θ, the point of the last `value_gradient` call.
    fn hessian(&self, theta: &[f64]) -> Vec<f64>;
}

/// Per variable, its lower and upper bound (±∞ for none).
#[derive(Debug, Clone)]
pub struct Bounds {
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
}

impl Bounds {
    fn project(&self, a: usize, t: f64) -> f64 {
        t.max(self.lower[a]).min(self.upper[a])
    }
}

/// Where the solver stopped.
#[derive(Debug, Clone)]
pub struct Minimum {
    pub theta: Vec<f64>,
    pub objective: f64,
    pub gradient_norm: f64,
    pub iterations: usize,
}

/// Rows summed plainly before their total joins the compensated sum.
pub const BLOCK: usize = 256;

/// Neumaier's compensated sum.
#[derive(Debug, Clone, Copy, Default)]
pub struct Compensated {
    sum: f64,
    carry: f64,
}

impl Compensated {
    pub fn add(&mut self, v: f64) {
        let t = self.sum + v;
        self.carry += if self.sum.abs() >= v.abs() { (self.sum - t) + v } else { (v - t) + self.sum };
        self.sum = t;
    }

    pub fn total(&self) -> f64 {
        self.sum + self.carry
    }

    /// Adds another compensated sum (of the rows after this one's).
    pub fn merge(&mut self, other: &Compensated) {
        self.add(other.sum);
        self.carry += other.carry;
    }
}

/// The loss and gradient sums of a pass over `rows` (one chunk of a pass): `row(i, loss,
/// gradient)` adds row i's terms to plain sums over a block of `BLOCK` rows, which join the
/// compensated totals at the block's end.
#[inline(always)]
pub fn blocked_sums(
    rows: std::ops::Range<usize>,
    d: usize,
    mut row: impl FnMut(usize, &mut f64, &mut [f64]),
) -> (Compensated, Vec<Compensated>) {
    let mut loss = Compensated::default();
    let mut g = vec![Compensated::default(); d];
    let mut g_part = vec![0.0; d];
    let mut start = rows.start;
    while start < rows.end {
        let end = (start + BLOCK).min(rows.end);
        let mut loss_part = 0.0;
        g_part.fill(0.0);
        for i in start..end {
            row(i, &mut loss_part, &mut g_part);
        }
        loss.add(loss_part);
        for (total, part) in g.iter_mut().zip(&g_part) {
            total.add(*part);
        }
        start = end;
    }
    (loss, g)
}

/// σ(z), 1 − σ(z) and the log-loss of outcome `y` (1 or 0) from one exponential, none of them
/// by cancellation (so p − y stays exact when p is near 1).
#[inline(always)]
pub fn logistic_terms(z: f64, y: f64) -> (f64, f64, f64) {
    let e = (-z.abs()).exp();
    let (p, q) = if z >= 0.0 { (1.0 / (1.0 + e), e / (1.0 + e)) } else { (e / (1.0 + e), 1.0 / (1.0 + e)) };
    let softplus_abs = e.ln_1p();
    let loss = if y == 1.0 { (-z).max(0.0) + softplus_abs } else { z.max(0.0) + softplus_abs };
    (p, q, loss)
}

/// θ − P(θ − g): the projected gradient, whose norm is 0 exactly at the constrained optimum.
fn projected_gradient(theta: &[f64], g: &[f64], bounds: &Bounds) -> Vec<f64> {
    theta
        .iter()
        .zip(g)
        .enumerate()
        .map(|(a, (&t, &gi))| {
            if bounds.lower[a] == f64::NEG_INFINITY && bounds.upper[a] == f64::INFINITY {
                gi
            } else {
                t - bounds.project(a, t - gi)
            }
        })
        .collect()
}

pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Solves `h x = rhs` for a symmetric positive definite `h` (Cholesky); None when it is not.
fn solve_spd(h: &[f64], rhs: &[f64]) -> Option<Vec<f64>> {
    let n = rhs.len();
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s = h[i * n + j] - (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
            if i == j {
                if s.is_nan() || s <= 0.0 {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        y[i] = (rhs[i] - (0..i).map(|k| l[i * n + k] * y[k]).sum::<f64>()) / l[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - (i + 1..n).map(|k| l[k * n + i] * x[k]).sum::<f64>()) / l[i * n + i];
    }
    Some(x)
}

/// Minimises `objective` within `bounds` from `theta` (which must lie within them). `what`
/// names the caller in errors.
pub fn minimize(objective: &impl Objective, theta: Vec<f64>, bounds: &Bounds, what: &str) -> Result<Minimum, Error> {
    // Once below the tolerance, up to two more steps are kept while they lower the projected
    // gradient: a gradient of 1e-10 can still leave β off by 1e-10 / λ, and Newton's quadratic
    // convergence makes the extra steps nearly free in iterations.
    minimize_polished(objective, theta, bounds, what, 2, TOLERANCE)
}

/// `minimize`, with up to `polish` steps kept past `tolerance` (of the projected gradient's
/// norm).
pub fn minimize_polished(
    objective: &impl Objective,
    mut theta: Vec<f64>,
    bounds: &Bounds,
    what: &str,
    polish: usize,
    tolerance: f64,
) -> Result<Minimum, Error> {
    let d = theta.len();
    if d > MAX_VARIABLES {
        return Err(Error::LimitExceeded {
            message: format!("{what}: {d} variables to fit; a fit takes at most {MAX_VARIABLES}"),
            hint: "fit a model with fewer components, or shapes with fewer knots".into(),
        });
    }
    let mut iterations = 0;
    let (mut f, mut g) = objective.value_gradient(&theta);
    let mut polish = polish;
    let mut before_polish: Option<(Vec<f64>, f64, Vec<f64>, f64)> = None;
    loop {
        let pg = projected_gradient(&theta, &g, bounds);
        let pg_norm = norm(&pg);
        if let Some((t, f0, g0, norm0)) = before_polish.take() {
            if pg_norm >= norm0 {
                (theta, f, g) = (t, f0, g0);
                break;
            }
        }
        if pg_norm < tolerance {
            if polish == 0 || pg_norm == 0.0 {
                break;
            }
            polish -= 1;
            before_polish = Some((theta.clone(), f, g.clone(), pg_norm));
        }
        if iterations == MAX_ITERATIONS {
            return Err(Error::InvalidArgument {
                message: format!(
                    "{what}: no convergence after {MAX_ITERATIONS} iterations (projected gradient {pg_norm:e})"
                ),
                hint: Some("a larger options.l2 makes the problem better conditioned".into()),
            });
        }
        iterations += 1;
        // the last value_gradient call was at θ: the start, or the step just accepted
        let h = objective.hessian(&theta);
        // Bertsekas's active set: at (or within ε of) a bound, with the gradient pushing
        // through it. Those move by the gradient (and are projected back); the rest by Newton.
        let eps = pg_norm.min(1e-6);
        let active: Vec<bool> = (0..d)
            .map(|a| {
                (theta[a] >= bounds.upper[a] - eps && g[a] < 0.0) || (theta[a] <= bounds.lower[a] + eps && g[a] > 0.0)
            })
            .collect();
        let mut direction: Vec<f64> = g.iter().map(|&gi| -gi).collect();
        // The Newton step of the free variables. One that would cross its bound stops at it,
        // and the others' step is solved again with that move given: the step then stays
        // within the bounds, where a step cut by the projection would have been a worse
        // direction, and each cut of the line search is one more pass over the rows.
        let mut stopped: Vec<usize> = Vec::new();
        // the first solve's step: Bertsekas's own direction, a descent direction
        let mut plain: Option<Vec<f64>> = None;
        for _ in 0..d {
            let free: Vec<usize> = (0..d).filter(|&a| !active[a] && !stopped.contains(&a)).collect();
            let hf: Vec<f64> =
                free.iter().flat_map(|&a| free.iter().map(move |&b| (a, b))).map(|(a, b)| h[a * d + b]).collect();
            let gf: Vec<f64> = free
                .iter()
                .map(|&a| -g[a] - stopped.iter().map(|&b| h[a * d + b] * direction[b]).sum::<f64>())
                .collect();
            // without a Newton step (never expected: the Hessian is positive definite),
            // steepest descent on the free variables too
            let Some(step) = solve_spd(&hf, &gf) else { break };
            let mut crossing = false;
            for (i, &a) in free.iter().enumerate() {
                let to = theta[a] + step[i];
                if to < bounds.lower[a] || to > bounds.upper[a] {
                    direction[a] = bounds.project(a, to) - theta[a];
                    stopped.push(a);
                    crossing = true;
                } else {
                    direction[a] = step[i];
                }
            }
            if !crossing {
                break;
            }
            if plain.is_none() {
                let mut first = direction.clone();
                for (i, &a) in free.iter().enumerate() {
                    first[a] = step[i];
                }
                plain = Some(first);
            }
        }
        // the stopped step is the minimum of the Newton model with the stopped moves given;
        // should it not lead downhill (never seen), the plain step is taken
        let downhill = |d: &[f64]| (0..d.len()).filter(|&a| !active[a]).map(|a| g[a] * d[a]).sum::<f64>() < 0.0;
        if let Some(first) = plain.filter(|_| !downhill(&direction)) {
            direction = first;
        }
        let mut alpha = 1.0;
        let mut accepted = None;
        for _ in 0..60 {
            let trial: Vec<f64> = theta
                .iter()
                .zip(&direction)
                .enumerate()
                .map(|(a, (&t, &dv))| bounds.project(a, t + alpha * dv))
                .collect();
            let decrease: f64 = (0..d).map(|a| g[a] * (theta[a] - trial[a])).sum();
            // the gradient comes with the objective, in the same pass over the rows: the full
            // step is nearly always taken, and then it is the next iteration's
            let (ft, gt) = objective.value_gradient(&trial);
            // the slack absorbs rounding in f, which near the optimum is larger than the decrease
            if ft <= f - 1e-4 * decrease + 4.0 * f64::EPSILON * f.abs() {
                accepted = Some((trial, ft, gt));
                break;
            }
            alpha *= 0.5;
        }
        let Some(next) = accepted else {
            if let Some((t, f0, g0, _)) = before_polish.take() {
                (theta, f, g) = (t, f0, g0);
                break;
            }
            return Err(Error::InvalidArgument {
                message: format!("{what}: the line search stalled (projected gradient {pg_norm:e})"),
                hint: Some("a larger options.l2 makes the problem better conditioned".into()),
            });
        };
        (theta, f, g) = next;
    }
    let gradient_norm = norm(&projected_gradient(&theta, &g, bounds));
    Ok(Minimum { theta, objective: f, gradient_norm, iterations })
}
