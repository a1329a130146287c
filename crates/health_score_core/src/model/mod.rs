//! Model format 1: the compiled model's types. Parsing and validation are one pass
//! (`Model::parse` returns a compiled model or every fault found, each with its JSON path),
//! laid out by concern: `checker` (the typed readers every rule uses, and bands),
//! `normalizer_spec` (the normalizers), `components` (the tree), `segments` (the overrides),
//! `validate` (the model as a whole) and `program` (the evaluation program of each variant).

use std::collections::HashMap;

use super::error::{Error, Fault};
use super::interrupts::Ticker;
use super::json::Json;
use super::normalize::{Categories, Normalizer};

mod checker;
mod components;
mod normalizer_spec;
mod path;
mod program;
mod segments;
mod validate;

pub use path::{is_valid_name, Path, NAME_RULE};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MissingRule {
    Reweight,
    Zero,
    Impute(f64),
}

impl MissingRule {
    /// The `n` a missing component counts with, or None when it is left out.
    pub fn imputed(self) -> Option<f64> {
        match self {
            MissingRule::Reweight => None,
            MissingRule::Zero => Some(0.0),
            MissingRule::Impute(v) => Some(v),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInvalid {
    Error,
    Missing,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub name: String,
    pub min: f64,
}

/// One component, leaf or group; `Model::nodes` holds them in model order, parents first.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    /// For a leaf: the index of its input in `Model::inputs`.
    pub slot: Option<usize>,
    pub missing: MissingRule,
    pub on_invalid: OnInvalid,
    pub description: Option<String>,
}

impl Node {
    pub fn is_leaf(&self) -> bool {
        self.slot.is_some()
    }
}

/// A distinct input key the model reads, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSlot {
    pub key: String,
    /// Read as a number by some numeric normalizer (in any variant).
    pub numeric: bool,
    /// Read as a category (a map normalizer in any variant, or the segment input).
    pub categorical: bool,
}

/// The weights, normalizers and bands in force: the base model or one segment's override.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Per node, as the model gives them; 0 removes the node (segment overrides only).
    pub weights: Vec<f64>,
    /// The weights the computation uses: each set of siblings scaled by a power of two
    /// towards 1 when its largest weight is far from 1, so that no sum of weights overflows
    /// and no product of a weight underflows; shares are the same.
    pub working_weights: Vec<f64>,
    pub bands: Option<Vec<Band>>,
    /// Points of margin before a known previous band is left (`band_hysteresis`, 0 = none).
    pub band_hysteresis: f64,
    /// The components in force, children before parents, for evaluation without recursion.
    pub program: Vec<Step>,
    /// How many accumulators the program uses (one per group in force, plus the top level).
    pub accumulators: usize,
    /// The top level's weight in force and its reciprocal (see `StepKind::Group`).
    pub top_weight: (f64, f64),
    /// Whether, when every leaf counts, the score is `scale × Σ share × n` over the leaves:
    /// true unless some group in force has no child in force (or nothing is in force).
    pub flat: bool,
}

/// One component in a variant's evaluation program.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: usize,
    pub kind: StepKind,
    pub weight: f64,
    pub share: f64,
    /// The accumulator of the parent (0 for the top level).
    pub parent: usize,
    pub imputed: Option<f64>,
    pub invalid_is_missing: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// A leaf: the input it reads and its normalizer in this variant (kept here, next to the
    /// step, for the per-row loop).
    Leaf { slot: usize, normalizer: Normalizer },
    /// A group: its own accumulator, and the weight of its children in force with its
    /// reciprocal (when every child counts, the mean is a multiplication, not a division).
    Group { acc: usize, full_weight: f64, per_full_weight: f64 },
}

impl Variant {
    fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        (self.weights.capacity() + self.working_weights.capacity()) * size_of::<f64>()
            + self.program.capacity() * size_of::<Step>()
            + self
                .program
                .iter()
                .map(|s| match &s.kind {
                    StepKind::Leaf { normalizer, .. } => normalizer.heap_bytes(),
                    StepKind::Group { .. } => 0,
                })
                .sum::<usize>()
            + self.bands.as_ref().map_or(0, |b| b.iter().map(|b| size_of::<Band>() + b.name.capacity()).sum())
    }
}

impl Model {
    /// The memory the model holds, approximately: what caching it costs.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let nodes: usize = self
            .nodes
            .iter()
            .map(|n| {
                size_of::<Node>()
                    + n.name.capacity()
                    + n.children.capacity() * size_of::<usize>()
                    + n.description.as_ref().map_or(0, String::capacity)
            })
            .sum();
        let inputs: usize = self.inputs.iter().map(|i| size_of::<InputSlot>() + i.key.capacity()).sum();
        let overrides: usize = self
            .overrides
            .iter()
            .map(|(name, v)| size_of::<(String, Variant)>() + name.capacity() + v.heap_bytes())
            .sum();
        size_of::<Model>()
            + nodes
            + inputs
            + self.top.capacity() * size_of::<usize>()
            + self.base.heap_bytes()
            + overrides
            + self.segments.as_ref().map_or(0, |s| s.overrides.heap_bytes())
            + self.description.as_ref().map_or(0, String::capacity)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segments {
    pub slot: usize,
    /// Category text -> index into `Model::overrides`.
    pub overrides: Categories<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub scale: f64,
    pub min_coverage: f64,
    pub calibration: Option<(f64, f64)>,
    pub description: Option<String>,
    pub nodes: Vec<Node>,
    pub top: Vec<usize>,
    pub inputs: Vec<InputSlot>,
    pub base: Variant,
    pub segments: Option<Segments>,
    pub overrides: Vec<(String, Variant)>,
}

/// Collects faults while walking the model.
struct Checker {
    faults: Vec<Fault>,
    ticker: Ticker,
}

/// Components as read, before segments are applied.
struct Draft {
    nodes: Vec<Node>,
    weights: Vec<f64>,
    normalizers: Vec<Option<Normalizer>>,
    input_keys: Vec<Option<String>>,
    is_group: Vec<bool>,
    /// name -> (node index, its path)
    names: HashMap<String, (usize, String)>,
}

impl Model {
    /// Parses and validates a model. On failure, returns every fault found.
    pub fn parse(json: &Json) -> Result<Model, Error> {
        validate::check(json).map_err(Error::InvalidModel)
    }

    /// Every fault of a model, empty when it is valid.
    pub fn faults(json: &Json) -> Vec<Fault> {
        validate::check(json).err().unwrap_or_default()
    }
}
