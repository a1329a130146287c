//! Scoring: evaluate a model over one input, then read off the score, the band, the coverage
//! and the explanation.

use super::error::Error;
use super::model::{Band, Model, Step, StepKind, Variant};
use super::normalize::{clamp01, Normalizer, Unusable};
use super::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Invalid,
    Missing,
    Imputed,
    Excluded,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Invalid => "invalid",
            Status::Missing => "missing",
            Status::Imputed => "imputed",
            Status::Excluded => "excluded",
        }
    }
}

/// What happened to one component.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeResult {
    pub status: Status,
    /// `n` as used in the score; None when left out or excluded.
    pub normalized: Option<f64>,
}

/// `sum_wn / sum_w`, as a multiplication when every sibling counted (the common case).
#[inline(always)]
fn weighted_mean(sum_w: f64, sum_wn: f64, full_weight: f64, per_full_weight: f64) -> f64 {
    if sum_w == full_weight {
        sum_wn * per_full_weight
    } else {
        sum_wn / sum_w
    }
}

/// An invalid input that is an error (kept small: it travels up every level of the tree).
#[derive(Debug, Clone, Copy)]
struct Unscorable {
    id: usize,
    slot: usize,
    why: Unusable,
}

const EXCLUDED: NodeResult = NodeResult { status: Status::Excluded, normalized: None };

/// The score of one input, without the per-component detail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// None for the base model, else the index into `Model::overrides`.
    pub segment: Option<usize>,
    pub score: Option<f64>,
    pub coverage: f64,
}

/// Buffers for `evaluate_into`, reused across inputs.
#[derive(Debug, Default)]
pub struct Scratch {
    pub nodes: Vec<NodeResult>,
    acc: Vec<(f64, f64)>,
}

/// The outcome of scoring one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// None for the base model, else the index into `Model::overrides`.
    pub segment: Option<usize>,
    pub score: Option<f64>,
    pub coverage: f64,
    pub nodes: Vec<NodeResult>,
}

/// One row of `explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    pub component: String,
    pub parent: Option<String>,
    pub input: Option<String>,
    pub raw: Option<String>,
    pub normalized: Option<f64>,
    pub weight: f64,
    pub contribution: Option<f64>,
    pub status: Status,
}

impl Model {
    /// The override that applies to these inputs, by the segment input's category text.
    #[inline]
    pub fn segment_for(&self, values: &[Value<'_>]) -> Option<usize> {
        let seg = self.segments.as_ref()?;
        let category = values.get(seg.slot)?.category()?;
        seg.overrides.get(category.as_ref())
    }

    pub fn variant(&self, segment: Option<usize>) -> &Variant {
        match segment {
            Some(i) => &self.overrides[i].1,
            None => &self.base,
        }
    }

    pub fn segment_name(&self, segment: Option<usize>) -> Option<&str> {
        segment.map(|i| self.overrides[i].0.as_str())
    }

    /// Scores one input; `values[i]` is the value of `self.inputs[i]`.
    pub fn evaluate(&self, values: &[Value<'_>]) -> Result<Evaluation, Error> {
        let mut scratch = Scratch::default();
        let s = self.evaluate_into::<true>(values, &mut scratch)?;
        Ok(Evaluation { segment: s.segment, score: s.score, coverage: s.coverage, nodes: scratch.nodes })
    }

    /// Scores one input with buffers reused across inputs, so the per-row path allocates
    /// nothing. With `DETAIL`, each component's result is written to `scratch.nodes` (for
    /// `explain`); without, only the summary is computed.
    pub fn evaluate_into<const DETAIL: bool>(
        &self,
        values: &[Value<'_>],
        scratch: &mut Scratch,
    ) -> Result<Summary, Error> {
        let segment = self.segment_for(values);
        let variant = self.variant(segment);
        if !DETAIL && variant.flat {
            if let Some((total, coverage)) = Self::evaluate_flat(variant, values) {
                let score = (coverage >= self.min_coverage - 1e-9).then_some(self.scale * clamp01(total));
                return Ok(Summary { segment, score, coverage: round_coverage(coverage) });
            }
        }
        let leaf = |step: &Step, slot: usize, normalizer: &Normalizer| match values.get(slot).unwrap_or(&Value::Missing)
        {
            Value::Missing => Ok((Status::Missing, None)),
            value => match normalizer.apply(value) {
                Ok(v) => Ok((Status::Ok, Some(v))),
                Err(_) if step.invalid_is_missing => Ok((Status::Invalid, None)),
                Err(why) => Err(Unscorable { id: step.id, slot, why }),
            },
        };
        self.run_program::<DETAIL, _>(segment, scratch, leaf).map_err(|u| self.invalid_input(u, values))
    }

    /// The evaluation a stored record gives back: `leaves` holds each leaf's status and `n` as
    /// an evaluation of `segment` left them (any other node is ignored). The program runs as it
    /// ran then, so the score, the coverage, every group's `n` and every component's points
    /// (`points`) are the same doubles.
    pub fn evaluate_leaves(&self, segment: Option<usize>, leaves: &[NodeResult]) -> Evaluation {
        let mut scratch = Scratch::default();
        let leaf = |step: &Step, _: usize, _: &Normalizer| {
            let r = leaves.get(step.id).copied().unwrap_or(EXCLUDED);
            Ok::<_, std::convert::Infallible>((r.status, r.normalized))
        };
        let s = match self.run_program::<true, _>(segment, &mut scratch, leaf) {
            Ok(s) => s,
            Err(never) => match never {},
        };
        Evaluation { segment: s.segment, score: s.score, coverage: s.coverage, nodes: scratch.nodes }
    }

    /// The program of `segment`'s variant, each leaf's status and `n` (before imputation) from
    /// `leaf`. Children come before their parents: a group's accumulator is complete when its
    /// step comes, and each counted component adds itself to its parent's.
    #[inline(always)]
    fn run_program<const DETAIL: bool, E>(
        &self,
        segment: Option<usize>,
        scratch: &mut Scratch,
        mut leaf: impl FnMut(&Step, usize, &Normalizer) -> Result<(Status, Option<f64>), E>,
    ) -> Result<Summary, E> {
        let variant = self.variant(segment);
        let nodes = &mut scratch.nodes;
        if DETAIL {
            nodes.clear();
            nodes.resize(self.nodes.len(), EXCLUDED);
        }
        let acc = &mut scratch.acc;
        acc.clear();
        acc.resize(variant.accumulators, (0.0, 0.0));
        let mut coverage = 0.0;
        // With DETAIL, the leaves' sum as evaluate_flat adds it, while every leaf counts: the
        // score is then that sum, so that every function returns the same double for an input
        // (the groups' weighted means equal it only to rounding).
        let mut flat_total = 0.0;
        let mut every_leaf_counts = DETAIL && variant.flat;
        for step in &variant.program {
            let (mut status, mut n) = match &step.kind {
                StepKind::Leaf { slot, normalizer } => {
                    let (status, n) = leaf(step, *slot, normalizer)?;
                    if status == Status::Ok {
                        coverage += step.share;
                    }
                    (status, n)
                }
                StepKind::Group { acc: own, full_weight, per_full_weight } => {
                    let (sum_w, sum_wn) = acc[*own];
                    if sum_w > 0.0 {
                        (Status::Ok, Some(weighted_mean(sum_w, sum_wn, *full_weight, *per_full_weight)))
                    } else {
                        (Status::Missing, None)
                    }
                }
            };
            if n.is_none() {
                n = step.imputed;
                if n.is_some() && status == Status::Missing {
                    status = Status::Imputed;
                }
            }
            if DETAIL {
                nodes[step.id] = NodeResult { status, normalized: n };
                if every_leaf_counts && matches!(step.kind, StepKind::Leaf { .. }) {
                    match n {
                        Some(v) => flat_total += step.share * v,
                        None => every_leaf_counts = false,
                    }
                }
            }
            if let Some(v) = n {
                let parent = &mut acc[step.parent];
                parent.0 += step.weight;
                parent.1 += step.weight * v;
            }
        }
        let (sum_w, sum_wn) = acc[0];
        let (full_weight, per_full_weight) = variant.top_weight;
        let mut score = if every_leaf_counts {
            Some(self.scale * clamp01(flat_total))
        } else {
            (sum_w > 0.0).then(|| self.scale * clamp01(weighted_mean(sum_w, sum_wn, full_weight, per_full_weight)))
        };
        if coverage < self.min_coverage - 1e-9 {
            score = None;
        }
        Ok(Summary { segment, score, coverage: round_coverage(coverage) })
    }

    /// The common case, when every leaf counts (present and valid, or imputed): no group has
    /// to reweight, so the score is `scale × Σ share × n` over the leaves, which equals the
    /// groups' weighted means to rounding, and costs no accumulators. Returns the sum and the
    /// coverage, or None when some leaf is left out or its value is an error: the full
    /// program then decides.
    #[inline(always)]
    fn evaluate_flat(variant: &Variant, values: &[Value<'_>]) -> Option<(f64, f64)> {
        let mut total = 0.0;
        let mut coverage = 0.0;
        for step in &variant.program {
            let StepKind::Leaf { slot, normalizer } = &step.kind else { continue };
            let n = match values.get(*slot).unwrap_or(&Value::Missing) {
                Value::Missing => step.imputed?,
                value => match normalizer.apply(value) {
                    Ok(v) => {
                        // in program order, as the full program adds it: the same coverage
                        coverage += step.share;
                        v
                    }
                    Err(_) if step.invalid_is_missing => step.imputed?,
                    Err(_) => return None,
                },
            };
            total += step.share * n;
        }
        Some((total, coverage))
    }

    fn invalid_input(&self, u: Unscorable, values: &[Value<'_>]) -> Error {
        Error::InvalidInput {
            component: self.nodes[u.id].name.clone(),
            input: self.inputs[u.slot].key.clone(),
            value: values.get(u.slot).and_then(Value::raw_text).unwrap_or_default(),
            reason: u.why.reason().to_string(),
        }
    }

    /// The band a score falls in, with its rank (0 = the worst), by the bands in force.
    pub fn band_of(&self, segment: Option<usize>, score: Option<f64>) -> Option<(usize, &Band)> {
        band_in(self.variant(segment).bands.as_ref()?, score?)
    }

    /// The band of a score for an entity whose previous band is known (`band_hysteresis`):
    /// the previous band, found by name among the bands in force, is kept while
    /// `lo - h <= score < hi + h` (its own `min` and the next band's); otherwise, and when the
    /// previous band is unknown or not among them, the plain band.
    pub fn band_after(
        &self,
        segment: Option<usize>,
        score: Option<f64>,
        previous: Option<&str>,
    ) -> Option<(usize, &Band)> {
        let plain = self.band_of(segment, score)?;
        let variant = self.variant(segment);
        let (Some(bands), Some(previous), Some(s)) = (variant.bands.as_ref(), previous, score) else {
            return Some(plain);
        };
        let h = variant.band_hysteresis;
        let Some(p) = bands.iter().position(|b| b.name == previous) else { return Some(plain) };
        let lo = bands[p].min;
        let within_upper = bands.get(p + 1).is_none_or(|next| s < next.min + h);
        if lo - h <= s && within_upper {
            Some((p, &bands[p]))
        } else {
            Some(plain)
        }
    }

    /// The index of the segment override named `name` (as `segment_name` gives it).
    pub fn segment_index(&self, name: &str) -> Option<usize> {
        self.overrides.iter().position(|(category, _)| category == name)
    }

    /// Churn probability by the model's calibration, if it has one.
    pub fn churn_probability(&self, score: Option<f64>) -> Option<f64> {
        let (a, b) = self.calibration?;
        let s = score?;
        Some(1.0 / (1.0 + (-(a + b * s)).exp()))
    }

    /// One row per component, in model order, parents first.
    pub fn explain(&self, values: &[Value<'_>], eval: &Evaluation) -> Vec<Explained> {
        let (weights, contributions) = self.points(eval.segment, &eval.nodes);
        self.nodes
            .iter()
            .enumerate()
            .map(|(id, node)| {
                let r = eval.nodes[id];
                Explained {
                    component: node.name.clone(),
                    parent: node.parent.map(|p| self.nodes[p].name.clone()),
                    input: node.slot.map(|s| self.inputs[s].key.clone()),
                    raw: node.slot.and_then(|s| values.get(s)).and_then(Value::raw_text),
                    normalized: r.normalized,
                    weight: weights[id],
                    contribution: eval.score.map(|_| contributions[id]),
                    status: r.status,
                }
            })
            .collect()
    }

    /// Per component (model order): its effective weight, and the points it contributes
    /// (`scale × effective weight × n` for a leaf or a group that stands in for its children,
    /// the sum of its children's points for a group; 0 when left out). `nodes` are an
    /// evaluation's results in detail.
    pub fn points(&self, segment: Option<usize>, nodes: &[NodeResult]) -> (Vec<f64>, Vec<f64>) {
        let variant = self.variant(segment);
        let mut weights = vec![0.0; self.nodes.len()];
        self.effective_weights(&self.top, 1.0, variant, nodes, &mut weights);
        let mut contributions = vec![0.0; self.nodes.len()];
        // children come after their parents, so a reverse pass sums groups from their children
        for id in (0..self.nodes.len()).rev() {
            let node = &self.nodes[id];
            let r = nodes[id];
            contributions[id] = match (r.status, r.normalized) {
                (Status::Excluded, _) | (_, None) => 0.0,
                (Status::Ok, Some(_)) if !node.is_leaf() => node.children.iter().map(|&c| contributions[c]).sum(),
                (_, Some(n)) => self.scale * weights[id] * n,
            };
        }
        (weights, contributions)
    }

    fn effective_weights(&self, ids: &[usize], parent: f64, variant: &Variant, nodes: &[NodeResult], out: &mut [f64]) {
        let counted = |id: usize| nodes[id].normalized.is_some() && nodes[id].status != Status::Excluded;
        let total: f64 = ids.iter().filter(|&&i| counted(i)).map(|&i| variant.working_weights[i]).sum();
        for &id in ids {
            if counted(id) && total > 0.0 {
                out[id] = parent * variant.working_weights[id] / total;
                if nodes[id].status == Status::Ok {
                    self.effective_weights(&self.nodes[id].children, out[id], variant, nodes, out);
                }
            }
        }
    }
}

/// The band of a list (ascending by `min`) a score falls in, with its rank (0 = the worst).
pub fn band_in(bands: &[Band], score: f64) -> Option<(usize, &Band)> {
    // a score below every band (impossible for scores in [0, scale]) takes the worst band
    let rank = bands.partition_point(|b| b.min <= score).saturating_sub(1);
    bands.get(rank).map(|b| (rank, b))
}

/// Coverage as reported: the sum of the shares rounded to 12 decimals, so that full coverage is
/// exactly 1 and three tenths is 0.3 (`WHERE coverage = 1` finds the fully covered), while
/// `min_coverage` is checked on the sum itself.
pub fn round_coverage(sum: f64) -> f64 {
    (sum * 1e12).round() / 1e12
}
