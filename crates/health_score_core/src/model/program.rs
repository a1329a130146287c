//! The evaluation program of a variant: working weights, shares and the steps in order.

use super::{Band, Node, OnInvalid, Step, StepKind, Variant};
use crate::normalize::Normalizer;

/// The variant of the given weights, normalizers, bands and band hysteresis, compiled.
pub(super) fn compile_variant(
    nodes: &[Node],
    top: &[usize],
    given: Vec<f64>,
    normalizers: Vec<Option<Normalizer>>,
    bands: Option<Vec<Band>>,
    band_hysteresis: f64,
) -> Variant {
    let weights = working_weights(nodes, top, &given);
    let shares = compute_shares(nodes, top, &weights);
    let input = ProgramInput { nodes, weights: &weights, shares: &shares, normalizers: &normalizers };
    let (program, accumulators) = compile_program(&input, top);
    let top_weight = weight_in_force(top, &weights);
    let flat = program.iter().any(|step| matches!(step.kind, StepKind::Leaf { .. }))
        && program.iter().all(|step| !matches!(step.kind, StepKind::Group { full_weight, .. } if full_weight <= 0.0));
    Variant {
        weights: given,
        working_weights: weights,
        bands,
        band_hysteresis,
        program,
        accumulators,
        top_weight: (top_weight, 1.0 / top_weight),
        flat,
    }
}

/// The sum of the weights in force among `ids`, added in program order, so that it equals
/// the evaluation's running sum exactly when every one of them counts.
fn weight_in_force(ids: &[usize], weights: &[f64]) -> f64 {
    ids.iter().map(|&i| weights[i]).filter(|&w| w > 0.0).fold(0.0, |sum, w| sum + w)
}

struct ProgramInput<'a> {
    nodes: &'a [Node],
    weights: &'a [f64],
    shares: &'a [f64],
    normalizers: &'a [Option<Normalizer>],
}

fn compile_program(input: &ProgramInput<'_>, top: &[usize]) -> (Vec<Step>, usize) {
    fn walk(ids: &[usize], parent: usize, input: &ProgramInput<'_>, steps: &mut Vec<Step>, next_acc: &mut usize) {
        crate::interrupts::check_stack();
        for &id in ids {
            if input.weights[id] == 0.0 {
                continue; // excluded with its subtree
            }
            let node = &input.nodes[id];
            let kind = match (node.slot, &input.normalizers[id]) {
                (Some(slot), Some(normalizer)) => StepKind::Leaf { slot, normalizer: normalizer.clone() },
                _ => {
                    *next_acc += 1;
                    let acc = *next_acc;
                    walk(&node.children, acc, input, steps, next_acc);
                    let full_weight = weight_in_force(&node.children, input.weights);
                    StepKind::Group { acc, full_weight, per_full_weight: 1.0 / full_weight }
                }
            };
            steps.push(Step {
                id,
                kind,
                weight: input.weights[id],
                share: input.shares[id],
                parent,
                imputed: node.missing.imputed(),
                invalid_is_missing: node.on_invalid == OnInvalid::Missing,
            });
        }
    }
    let mut steps = Vec::new();
    let mut next_acc = 0;
    walk(top, 0, input, &mut steps, &mut next_acc);
    (steps, next_acc + 1)
}

/// The weights scaled per set of siblings (see `Variant::working_weights`). Scaling by a
/// power of two is exact, so a model whose weights are anywhere near 1 computes exactly as
/// written; a positive weight that the scaling would take below the smallest normal double
/// keeps that smallest one (it stays counted, with a share of nothing).
fn working_weights(nodes: &[Node], top: &[usize], given: &[f64]) -> Vec<f64> {
    let mut weights = given.to_vec();
    let sets = std::iter::once(top).chain(nodes.iter().map(|n| n.children.as_slice()));
    for ids in sets {
        let largest = ids.iter().map(|&i| weights[i]).fold(0.0, f64::max);
        if largest <= 0.0 || (1e-100..=1e100).contains(&largest) {
            continue;
        }
        // 2^-e with largest = m·2^e, 1 <= m < 2, applied in two steps (2^-e alone may not be
        // a double)
        let e = largest.log2().floor() as i32;
        let (half, rest) = (f64::powi(2.0, -e / 2), f64::powi(2.0, -e - (-e / 2)));
        for &i in ids {
            if weights[i] > 0.0 {
                weights[i] = (weights[i] * half * rest).max(f64::MIN_POSITIVE);
            }
        }
    }
    weights
}

fn compute_shares(nodes: &[Node], top: &[usize], weights: &[f64]) -> Vec<f64> {
    let mut shares = vec![0.0; nodes.len()];
    fn walk(ids: &[usize], parent_share: f64, nodes: &[Node], weights: &[f64], shares: &mut [f64]) {
        crate::interrupts::check_stack();
        let total: f64 = ids.iter().map(|&i| weights[i]).sum();
        for &i in ids {
            if weights[i] > 0.0 && total > 0.0 {
                shares[i] = parent_share * weights[i] / total;
                walk(&nodes[i].children, shares[i], nodes, weights, shares);
            }
        }
    }
    walk(top, 1.0, nodes, weights, &mut shares);
    shares
}
