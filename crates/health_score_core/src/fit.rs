//! Fitted weights: the design of one scored input (each leaf's `n` as scored), the
//! constrained logistic regression over the designs, and the fitted leaf weights mapped back
//! onto the model's tree.
//!
//! With every leaf counted, `score = scale × Σ_j (w_j / W) n_j`, so the model is linear in the
//! leaves' `n`. The fit minimises `(1/N) Σ logloss(y, σ(b + Σ β_j x_j)) + (λ/2) Σ β_j²` subject
//! to `β_j ≤ −1e-6` (health weights `w_j = −β_j`) by projected Newton (Bertsekas 1982), and maps
//! `w` onto the tree so that a group weighs the sum of its leaves: the fitted score is then
//! `scale · (b − logit) / W`, strictly decreasing in the fitted log-odds.

use super::error::Error;
use super::interrupts::{self, Ticker};
use super::json::Json;
use super::model::Model;
use super::parallel;
use super::score::{NodeResult, Status};
use super::solver::{self, Bounds, Compensated, Minimum, Objective};

/// The largest β a leaf may take: health weights are at least 1e-6.
pub const UPPER: f64 = -1e-6;
pub use super::solver::TOLERANCE;
/// The L2 penalty when the options name none.
pub const DEFAULT_L2: f64 = 1e-4;
/// Each class needs at least this many rows.
pub const MIN_CLASS_ROWS: u64 = 10;

impl Model {
    /// The model's leaves, in model order (the order of a design's columns).
    pub fn leaves(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&id| self.nodes[id].is_leaf()).collect()
    }

    /// Per component (model order) its weight when the leaves weigh `leaf_weights` (model
    /// order) and a group weighs the sum of its leaves.
    pub fn tree_weights(&self, leaf_weights: &[f64]) -> Vec<f64> {
        let mut w = vec![0.0; self.nodes.len()];
        for (id, &lw) in self.leaves().iter().zip(leaf_weights) {
            w[*id] = lw;
        }
        // children come after their parents
        for id in (0..self.nodes.len()).rev() {
            if !self.nodes[id].is_leaf() {
                w[id] = self.nodes[id].children.iter().map(|&c| w[c]).sum();
            }
        }
        w
    }

    /// One input's design: per leaf (model order) its `n` as scored, the `n` of the imputed
    /// group that stands for it, or NaN when the segment excludes it (weight 0). False when
    /// some leaf was left out and its siblings reweighted: such a row is not linear in the
    /// leaves and is left out of the fit.
    pub fn design_row(&self, nodes: &[NodeResult], out: &mut Vec<f64>) -> bool {
        out.clear();
        for (id, node) in self.nodes.iter().enumerate() {
            if !node.is_leaf() {
                continue;
            }
            let r = nodes[id];
            let x = match (r.status, r.normalized) {
                (Status::Excluded, _) => f64::NAN,
                (_, Some(n)) => n,
                (_, None) => match self.imputed_ancestor(id, nodes) {
                    Some(n) => n,
                    None => return false,
                },
            };
            out.push(x);
        }
        true
    }

    /// The `n` of the nearest group above `id` that was imputed as a whole, unless a group on
    /// the way counted (then `id` was left out and its siblings reweighted).
    pub(crate) fn imputed_ancestor(&self, id: usize, nodes: &[NodeResult]) -> Option<f64> {
        let mut at = self.nodes[id].parent;
        while let Some(g) = at {
            match nodes[g].status {
                Status::Imputed => return nodes[g].normalized,
                Status::Missing => at = self.nodes[g].parent,
                _ => return None,
            }
        }
        None
    }
}

/// The model whose designs the fit reads: without `by_segment`, the overrides lose their
/// `weights` (the fit drops them), so a component an override removed counts again.
pub fn design_model(model: &Json, by_segment: bool) -> Json {
    let mut out = model.clone();
    if !by_segment {
        if let Some(Json::Object(members)) = member_mut(&mut out, "segments").and_then(|s| member_mut(s, "overrides")) {
            for (_, o) in members.iter_mut() {
                if let Json::Object(fields) = o {
                    fields.retain(|(k, _)| k != "weights");
                }
            }
        }
    }
    out
}

fn member_mut<'a>(json: &'a mut Json, key: &str) -> Option<&'a mut Json> {
    match json {
        Json::Object(members) => members.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

/// The outcome of fitting one set of designs.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    pub intercept: f64,
    /// Per leaf of the design; 0 for a leaf not in the problem (excluded by its segment).
    pub beta: Vec<f64>,
    pub at_bound: Vec<bool>,
    pub iterations: usize,
    pub gradient_norm: f64,
    /// The objective at the solution.
    pub objective: f64,
}

/// Designs with their outcomes, sorted and with equal rows merged, so that every sum the fit
/// takes runs in one order whatever the order the rows came in.
struct Problem {
    /// Leaves in the problem (columns of `x`), as indices into the design.
    columns: Vec<usize>,
    /// Row-major, `columns.len()` per row.
    x: Vec<f64>,
    y: Vec<f64>,
    count: Vec<f64>,
    total: f64,
    l2: f64,
    /// The Hessian of the last `value_gradient` call.
    hessian: std::cell::RefCell<Vec<f64>>,
}

impl Problem {
    fn new(leaves: usize, x: &[f64], y: &[bool], l2: f64) -> Problem {
        let rows = y.len();
        // a leaf its segment excludes is NaN in every row of that segment
        let columns: Vec<usize> = (0..leaves).filter(|&j| rows == 0 || !x[j].is_nan()).collect();
        let row = |i: usize| &x[i * leaves..(i + 1) * leaves];
        let order = sorted_rows(x, leaves, columns.first().copied(), y);
        let k = columns.len();
        let mut p = Problem {
            x: Vec::with_capacity(rows * columns.len()),
            y: Vec::with_capacity(rows),
            count: Vec::with_capacity(rows),
            columns,
            total: rows as f64,
            l2,
            hessian: Default::default(),
        };
        let mut last: Option<usize> = None;
        for (n, &i) in order.iter().enumerate() {
            // rows are read in sorted order, scattered over the design: ask for one ahead of
            // time, or each read waits for memory (most of this loop's time without it)
            if let Some(&ahead) = order.get(n + PREFETCH_ROWS_AHEAD) {
                prefetch(x[ahead * leaves..(ahead + 1) * leaves].as_ptr_range());
            }
            if let Some(l) = last {
                if y[l] == y[i] && row(l).iter().zip(row(i)).all(|(a, b)| a.to_bits() == b.to_bits()) {
                    *p.count.last_mut().expect("a row was pushed") += 1.0;
                    continue;
                }
            }
            p.x.extend(p.columns.iter().map(|&j| row(i)[j]));
            p.y.push(if y[i] { 1.0 } else { 0.0 });
            p.count.push(1.0);
            last = Some(i);
        }
        debug_assert_eq!(p.x.len(), p.y.len() * k);
        p
    }
}

impl Objective for Problem {
    /// Computes the Hessian in the same pass (a pass of `fit` is cheap beside the rows'
    /// reading) and keeps it for `hessian`.
    fn value_gradient(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (f, g, h) = self.derivatives(theta);
        *self.hessian.borrow_mut() = h;
        (f, g)
    }

    fn hessian(&self, _theta: &[f64]) -> Vec<f64> {
        self.hessian.borrow().clone()
    }
}

impl Problem {
    /// The objective, its gradient and its Hessian (row-major, `(k+1)²`) at θ. Sums run in
    /// blocks whose totals are added with compensation: over a million rows a plain running
    /// sum loses more than the 1e-10 the projected gradient must reach.
    fn derivatives(&self, theta: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
        let k = self.columns.len();
        let d = k + 1;
        let (x, y, count) = (&self.x, &self.y, &self.count);
        let parts = parallel::chunks(y.len(), &mut [(); 0], |rows, _| {
            let mut h = vec![0.0; d * d];
            let mut v = vec![1.0; d];
            let (loss, g) = solver::blocked_sums(rows, d, |i, loss, g| {
                let (y, c) = (y[i], count[i]);
                v[1..].copy_from_slice(&x[i * k..(i + 1) * k]);
                let z = linear(theta, &v[1..]);
                let (p, q, l) = solver::logistic_terms(z, y);
                *loss += c * l;
                let r = c * if y == 1.0 { -q } else { p };
                let w = c * p * q;
                // the upper triangle, row by row, as slices (no bounds checks in the inner loop)
                for a in 0..d {
                    g[a] += r * v[a];
                    let wa = w * v[a];
                    for (hb, vb) in h[a * d + a..(a + 1) * d].iter_mut().zip(&v[a..]) {
                        *hb += wa * vb;
                    }
                }
            });
            interrupts::check();
            (loss, g, h)
        });
        let mut loss = Compensated::default();
        let mut g = vec![Compensated::default(); d];
        let mut h = vec![0.0; d * d];
        for (part_loss, part_g, part_h) in parts {
            loss.merge(&part_loss);
            for a in 0..d {
                g[a].merge(&part_g[a]);
                for b in a..d {
                    h[a * d + b] += part_h[a * d + b];
                }
            }
        }
        let n = self.total;
        let mut g: Vec<f64> = g.iter().map(|c| c.total() / n).collect();
        for a in 0..d {
            for b in a..d {
                h[a * d + b] /= n;
                h[b * d + a] = h[a * d + b];
            }
        }
        for j in 1..d {
            g[j] += self.l2 * theta[j];
            h[j * d + j] += self.l2;
        }
        let f = loss.total() / n + 0.5 * self.l2 * theta[1..].iter().map(|b| b * b).sum::<f64>();
        (f, g, h)
    }
}

/// The rows of `keys` (row-major, `width` a row) sorted by outcome and then by the whole row
/// (`f64::total_cmp` key by key): an order that depends only on the rows, not on the order
/// they came in. `lead` is the first key that can differ between rows (None: none can).
pub(crate) fn sorted_rows(keys: &[f64], width: usize, lead: Option<usize>, y: &[bool]) -> Vec<usize> {
    let row = |i: usize| &keys[i * width..(i + 1) * width];
    // Sorted by (outcome, lead key) as one local integer, then by the whole row: reading rows
    // scattered in memory on every comparison made the sort most of the fit's time.
    let mut order: Vec<(u64, usize)> = (0..y.len())
        .map(|i| {
            let bits = lead.map_or(0, |j| ordered_bits(keys[i * width + j]));
            // the outcome in the top bit, the key's order in the rest (its lowest bit is lost:
            // equal integers fall back to the whole row)
            ((y[i] as u64) << 63 | bits >> 1, i)
        })
        .collect();
    let mut ticker = Ticker::default();
    order.sort_unstable_by(|&(ka, a), &(kb, b)| {
        ticker.tick();
        ka.cmp(&kb).then_with(|| {
            row(a)
                .iter()
                .zip(row(b))
                .map(|(p, q)| p.total_cmp(q))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    });
    order.into_iter().map(|(_, i)| i).collect()
}

const PREFETCH_ROWS_AHEAD: usize = 16;

/// Hints the CPU to load the memory of `range` into cache (a no-op off x86-64).
#[inline(always)]
fn prefetch(range: std::ops::Range<*const f64>) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch never faults and reads nothing the program sees; SSE, which it
        // needs, is part of every x86-64
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(range.start.cast());
            _mm_prefetch::<_MM_HINT_T0>(range.end.wrapping_sub(1).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = range;
}

/// `v`'s bits as an unsigned integer in `f64::total_cmp`'s order.
fn ordered_bits(v: f64) -> u64 {
    let bits = v.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

fn linear(theta: &[f64], x: &[f64]) -> f64 {
    theta[0] + theta[1..].iter().zip(x).map(|(b, x)| b * x).sum::<f64>()
}

/// Fits the designs `x` (row-major, `leaves` per row; NaN columns are leaves the segment
/// excludes) against the outcomes `y` (true = churned) with the L2 penalty `l2`.
pub fn fit(leaves: usize, x: &[f64], y: &[bool], l2: f64) -> Result<Solution, Error> {
    let churned = y.iter().filter(|&&c| c).count() as u64;
    let retained = y.len() as u64 - churned;
    if churned < MIN_CLASS_ROWS || retained < MIN_CLASS_ROWS {
        return Err(Error::InvalidArgument {
            message: format!(
                "fit: {churned} churned and {retained} retained rows; each class needs at least {MIN_CLASS_ROWS}"
            ),
            hint: Some("fit on more accounts, or without by_segment".into()),
        });
    }
    if leaves >= solver::MAX_VARIABLES {
        return Err(Error::LimitExceeded {
            message: format!("fit: {leaves} leaves to weigh; a fit takes at most {}", solver::MAX_VARIABLES - 1),
            hint: "fit a model with fewer components".into(),
        });
    }
    let problem = Problem::new(leaves, x, y, l2);
    let k = problem.columns.len();
    let d = k + 1;
    let rate = churned as f64 / y.len() as f64;
    let mut start = vec![UPPER; d];
    start[0] = (rate / (1.0 - rate)).ln();
    let mut bounds = Bounds { lower: vec![f64::NEG_INFINITY; d], upper: vec![UPPER; d] };
    bounds.upper[0] = f64::INFINITY;
    let Minimum { theta, objective, gradient_norm, iterations } = solver::minimize(&problem, start, &bounds, "fit")?;
    let mut beta = vec![0.0; leaves];
    let mut at_bound = vec![false; leaves];
    for (i, &j) in problem.columns.iter().enumerate() {
        beta[j] = theta[i + 1];
        at_bound[j] = theta[i + 1] == UPPER;
    }
    Ok(Solution { intercept: theta[0], beta, at_bound, iterations, gradient_norm, objective })
}

/// The model with fitted weights: `fits` are (segment, leaf weights in model order) with
/// `None` for the base model; a group weighs the sum of its leaves. Without `by_segment` the
/// overrides lose their `weights`; with it, each fitted segment's override gets the weight of
/// every component. `calibration` is dropped (it no longer fits).
pub fn apply(json: &Json, model: &Model, fits: &[(Option<usize>, Vec<f64>)], by_segment: bool) -> Json {
    let mut out = design_model(json, by_segment);
    if let Json::Object(members) = &mut out {
        members.retain(|(k, _)| k != "calibration");
    }
    for (segment, leaf_weights) in fits {
        let w = model.tree_weights(leaf_weights);
        match segment {
            None => {
                if let Some(components) = member_mut(&mut out, "components") {
                    set_weights(components, model, &w);
                }
            }
            Some(s) => {
                let name = &model.overrides[*s].0;
                let weights = Json::Object(
                    model.nodes.iter().enumerate().map(|(id, n)| (n.name.clone(), Json::Number(w[id]))).collect(),
                );
                let o = member_mut(&mut out, "segments")
                    .and_then(|s| member_mut(s, "overrides"))
                    .and_then(|o| member_mut(o, name));
                if let Some(Json::Object(fields)) = o {
                    fields.retain(|(k, _)| k != "weights");
                    fields.push(("weights".into(), weights));
                }
            }
        }
    }
    out
}

/// Sets the weights of the model's components from its leaves' weights (model order), a group
/// weighing the sum of its leaves.
pub fn tree_weights_json(json: &mut Json, model: &Model, leaf_weights: &[f64]) {
    let w = model.tree_weights(leaf_weights);
    if let Some(components) = member_mut(json, "components") {
        set_weights(components, model, &w);
    }
}

fn set_weights(components: &mut Json, model: &Model, w: &[f64]) {
    let Json::Array(items) = components else { return };
    for item in items {
        let Some(Json::String(name)) = item.get("name").cloned() else { continue };
        if let Some(id) = model.nodes.iter().position(|n| n.name == name) {
            if let Some(weight) = member_mut(item, "weight") {
                *weight = Json::Number(w[id]);
            }
        }
        if let Some(children) = member_mut(item, "components") {
            set_weights(children, model, w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fit_of_more_leaves_than_the_solver_takes_is_refused_before_its_matrices() {
        let leaves = solver::MAX_VARIABLES;
        let y: Vec<bool> = (0..20).map(|i| i % 2 == 0).collect();
        let x = vec![0.5; leaves * y.len()];
        match fit(leaves, &x, &y, DEFAULT_L2) {
            Err(Error::LimitExceeded { message, .. }) => assert!(message.contains("at most 4095"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    /// 200 rows of one leaf in [0, 1]; a row churns when its hash (0–99) is below
    /// `churn_percent(x)`.
    fn one_leaf(churn_percent: impl Fn(f64) -> f64) -> (Vec<f64>, Vec<bool>) {
        (0..200)
            .map(|i| {
                let v = (i % 20) as f64 / 19.0;
                (v, (i * 7919) % 100 < churn_percent(v) as usize)
            })
            .unzip()
    }

    #[test]
    fn unconstrained_optimum_has_zero_gradient() {
        // x high → retained: a health signal, so β < 0 freely
        let (x, y) = one_leaf(|v| 80.0 - 60.0 * v);
        let s = fit(1, &x, &y, 1e-4).unwrap();
        assert!(s.gradient_norm < TOLERANCE);
        assert!(s.beta[0] < UPPER);
        assert!(!s.at_bound[0]);
    }

    #[test]
    fn opposite_signal_sits_at_the_bound() {
        let (x, y) = one_leaf(|v| 20.0 + 60.0 * v);
        let s = fit(1, &x, &y, 1e-4).unwrap();
        assert_eq!(s.beta[0], UPPER);
        assert!(s.at_bound[0]);
    }

    #[test]
    fn too_few_in_a_class_is_an_error() {
        let x = vec![0.5; 30];
        let mut y = vec![false; 30];
        y[0] = true;
        assert!(matches!(fit(1, &x, &y, 1e-4), Err(Error::InvalidArgument { .. })));
    }
}

/// Whether a fit holds the account with this key out: the first 32 bits of the key's MD5 as
/// a fraction of 2^32, below `fraction` (reproducible anywhere md5 is:
/// `('x' || left(md5(key), 8))::bit(32)::int8 / 2^32 < fraction` in SQL).
pub fn held_out(key: &[u8], fraction: f64) -> bool {
    use md5::Digest;
    let digest = md5::Md5::digest(key);
    let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    (first as f64 / 4_294_967_296.0) < fraction
}

#[cfg(test)]
mod held_out_tests {
    /// md5('1') = c4ca4238…, 0xc4ca4238 / 2^32 = 0.76871…; md5('') = d41d8cd9…, 0.82857…
    #[test]
    fn the_first_32_bits_of_md5_decide() {
        assert!(super::held_out(b"1", 0.77));
        assert!(!super::held_out(b"1", 0.768));
        assert!(super::held_out(b"", 0.829));
        assert!(!super::held_out(b"", 0.828));
    }
}
