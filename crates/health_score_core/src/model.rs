//! Model format 1: parsing and validation in one pass. `Model::parse` either returns a
//! compiled model or every fault found, each with its JSON path.

use std::collections::{HashMap, HashSet};

use super::error::{Error, Fault};
use super::interrupts::Ticker;
use super::json::{write_json_string, Json};
use super::normalize::{Categories, Normalizer};

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
        super::interrupts::check_stack();
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

/// A JSON path under construction, printed as `components[2].normalize.max` or `$`.
#[derive(Debug, Clone, Default)]
pub struct Path(Vec<PathStep>);

#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

impl Path {
    pub fn key(&self, key: &str) -> Path {
        let mut p = self.clone();
        p.0.push(PathStep::Key(key.to_string()));
        p
    }

    pub fn index(&self, i: usize) -> Path {
        let mut p = self.clone();
        p.0.push(PathStep::Index(i));
        p
    }

    fn is_identifier(key: &str) -> bool {
        let mut chars = key.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("$");
        }
        let mut out = String::new();
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Index(n) => out.push_str(&format!("[{n}]")),
                PathStep::Key(k) => {
                    if i > 0 {
                        out.push('.');
                    }
                    if Path::is_identifier(k) {
                        out.push_str(k);
                    } else {
                        write_json_string(k, &mut out);
                    }
                }
            }
        }
        f.write_str(&out)
    }
}

pub fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

pub const NAME_RULE: &str = "must match ^[a-z][a-z0-9_]{0,62}$ (lower-case letters, digits and _, starting with a letter, at most 63 characters)";

fn fmt_num(v: f64) -> String {
    super::json::format_number(v)
}

/// Collects faults while walking the model.
struct Checker {
    faults: Vec<Fault>,
    ticker: Ticker,
}

impl Checker {
    fn fault(&mut self, path: &Path, message: impl Into<String>) {
        self.faults.push(Fault { path: path.to_string(), message: message.into() });
    }

    fn object<'j>(&mut self, json: &'j Json, path: &Path) -> Option<&'j [(String, Json)]> {
        match json {
            Json::Object(members) => Some(members),
            other => {
                self.fault(path, format!("must be an object, not {}", other.kind()));
                None
            }
        }
    }

    fn allow_keys(&mut self, members: &[(String, Json)], allowed: &[&str], path: &Path) {
        for (k, _) in members {
            if !allowed.contains(&k.as_str()) {
                self.fault(&path.key(k), format!("unknown key; allowed keys here: {}", allowed.join(", ")));
            }
        }
    }

    fn number(&mut self, json: &Json, path: &Path) -> Option<f64> {
        match json {
            Json::Number(v) if v.is_finite() => Some(*v),
            Json::Number(_) => {
                self.fault(path, "must be a finite number");
                None
            }
            other => {
                self.fault(path, format!("must be a number, not {}", other.kind()));
                None
            }
        }
    }

    fn unit(&mut self, json: &Json, path: &Path) -> Option<f64> {
        let v = self.number(json, path)?;
        if (0.0..=1.0).contains(&v) {
            Some(v)
        } else {
            self.fault(path, format!("must be between 0 and 1 ({})", fmt_num(v)));
            None
        }
    }

    fn positive(&mut self, json: &Json, path: &Path) -> Option<f64> {
        let v = self.number(json, path)?;
        if v > 0.0 {
            Some(v)
        } else {
            self.fault(path, format!("must be greater than 0 ({})", fmt_num(v)));
            None
        }
    }

    fn boolean(&mut self, json: &Json, path: &Path) -> Option<bool> {
        match json {
            Json::Bool(b) => Some(*b),
            other => {
                self.fault(path, format!("must be true or false, not {}", other.kind()));
                None
            }
        }
    }

    fn text<'j>(&mut self, json: &'j Json, path: &Path) -> Option<&'j str> {
        match json {
            Json::String(s) => Some(s),
            other => {
                self.fault(path, format!("must be a string, not {}", other.kind()));
                None
            }
        }
    }

    fn nonempty_text<'j>(&mut self, json: &'j Json, path: &Path) -> Option<&'j str> {
        let s = self.text(json, path)?;
        if s.is_empty() {
            self.fault(path, "must not be empty");
            None
        } else {
            Some(s)
        }
    }

    fn required<'j>(&mut self, members: &'j [(String, Json)], key: &str, path: &Path) -> Option<&'j Json> {
        let found = members.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        if found.is_none() {
            self.fault(&path.key(key), "is required");
        }
        found
    }

    fn missing_rule(&mut self, json: &Json, path: &Path) -> Option<MissingRule> {
        match json {
            Json::String(s) if s == "reweight" => Some(MissingRule::Reweight),
            Json::String(s) if s == "zero" => Some(MissingRule::Zero),
            Json::Object(members) => {
                self.allow_keys(members, &["impute"], path);
                let v = self.required(members, "impute", path)?;
                self.unit(v, &path.key("impute")).map(MissingRule::Impute)
            }
            _ => {
                self.fault(path, "must be \"reweight\", \"zero\" or {\"impute\": n} with n between 0 and 1");
                None
            }
        }
    }

    fn on_invalid(&mut self, json: &Json, path: &Path) -> Option<OnInvalid> {
        match json {
            Json::String(s) if s == "error" => Some(OnInvalid::Error),
            Json::String(s) if s == "missing" => Some(OnInvalid::Missing),
            _ => {
                self.fault(path, "must be \"error\" or \"missing\"");
                None
            }
        }
    }

    fn description(&mut self, members: &[(String, Json)], path: &Path) -> Option<String> {
        let d = members.iter().find(|(k, _)| k == "description")?;
        self.text(&d.1, &path.key("description")).map(str::to_string)
    }

    fn bands(&mut self, json: &Json, path: &Path) -> Option<Vec<Band>> {
        let items = match json {
            Json::Array(items) if !items.is_empty() => items,
            Json::Array(_) => {
                self.fault(path, "must not be empty");
                return None;
            }
            other => {
                self.fault(path, format!("must be an array of bands, not {}", other.kind()));
                return None;
            }
        };
        let before = self.faults.len();
        let mut bands = Vec::new();
        let mut names = HashSet::new();
        let mut previous: Option<f64> = None;
        for (i, item) in items.iter().enumerate() {
            let p = path.index(i);
            let Some(members) = self.object(item, &p) else { continue };
            self.allow_keys(members, &["name", "min", "description", "color", "label", "action"], &p);
            for key in ["description", "color", "label", "action"] {
                if let Some(v) = item.get(key) {
                    self.text(v, &p.key(key));
                }
            }
            let name = self.required(members, "name", &p).and_then(|n| self.nonempty_text(n, &p.key("name")));
            if let Some(n) = name {
                if !names.insert(n.to_string()) {
                    self.fault(&p.key("name"), format!("duplicate band name \"{n}\""));
                }
            }
            let min = self.required(members, "min", &p).and_then(|m| self.number(m, &p.key("min")));
            if let Some(m) = min {
                if i == 0 && m != 0.0 {
                    self.fault(&p.key("min"), format!("the first band's min must be 0 ({})", fmt_num(m)));
                }
                if let Some(prev) = previous {
                    if m <= prev {
                        self.fault(
                            &p.key("min"),
                            format!("must be greater than the previous band's min ({})", fmt_num(prev)),
                        );
                    }
                }
                previous = Some(m);
            }
            if let (Some(name), Some(min)) = (name, min) {
                bands.push(Band { name: name.to_string(), min });
            }
        }
        (self.faults.len() == before).then_some(bands)
    }

    fn normalizer(&mut self, json: &Json, path: &Path) -> Option<Normalizer> {
        let members = self.object(json, path)?;
        let type_name = match self.required(members, "type", path) {
            Some(Json::String(t)) => t.as_str(),
            Some(_) => {
                self.fault(&path.key("type"), "must be one of linear, log, steps, curve, logistic, decay, map");
                return None;
            }
            None => return None,
        };
        let before = self.faults.len();
        let get = |key: &str| json.get(key);
        let normalizer = match type_name {
            "linear" | "log" => {
                self.allow_keys(members, &["type", "min", "max", "invert", "description"], path);
                let min = self.required(members, "min", path).and_then(|v| self.number(v, &path.key("min")));
                let max = self.required(members, "max", path).and_then(|v| self.number(v, &path.key("max")));
                let invert = match get("invert") {
                    Some(v) => self.boolean(v, &path.key("invert")).unwrap_or(false),
                    None => false,
                };
                if type_name == "log" {
                    if let Some(m) = min {
                        if m < 0.0 {
                            self.fault(&path.key("min"), format!("must be at least 0 for log ({})", fmt_num(m)));
                        }
                    }
                }
                if let (Some(lo), Some(hi)) = (min, max) {
                    if hi <= lo {
                        self.fault(&path.key("max"), format!("must be greater than min ({})", fmt_num(lo)));
                    }
                }
                let (min, max) = (min?, max?);
                if type_name == "linear" {
                    Normalizer::linear(min, max, invert)
                } else {
                    Normalizer::log(min, max, invert)
                }
            }
            "steps" => {
                self.allow_keys(members, &["type", "steps", "below", "description"], path);
                let below = match get("below") {
                    Some(v) => self.unit(v, &path.key("below")).unwrap_or(0.0),
                    None => 0.0,
                };
                let sp = path.key("steps");
                let mut steps = Vec::new();
                match self.required(members, "steps", path) {
                    Some(Json::Array(items)) if !items.is_empty() => {
                        let mut previous: Option<f64> = None;
                        for (i, item) in items.iter().enumerate() {
                            let p = sp.index(i);
                            let Some(step) = self.object(item, &p) else { continue };
                            self.allow_keys(step, &["at", "score"], &p);
                            let at = self.required(step, "at", &p).and_then(|v| self.number(v, &p.key("at")));
                            let score = self.required(step, "score", &p).and_then(|v| self.unit(v, &p.key("score")));
                            if let Some(t) = at {
                                if let Some(prev) = previous {
                                    if t <= prev {
                                        self.fault(
                                            &p.key("at"),
                                            format!("must be greater than the previous step's at ({})", fmt_num(prev)),
                                        );
                                    }
                                }
                                previous = Some(t);
                            }
                            if let (Some(t), Some(s)) = (at, score) {
                                steps.push((t, s));
                            }
                        }
                    }
                    Some(Json::Array(_)) => self.fault(&sp, "must not be empty"),
                    Some(other) => self
                        .fault(&sp, format!("must be an array of {{\"at\": t, \"score\": s}}, not {}", other.kind())),
                    None => {}
                }
                Normalizer::Steps { steps, below }
            }
            "curve" => {
                self.allow_keys(members, &["type", "points", "description"], path);
                let pp = path.key("points");
                let mut points = Vec::new();
                match self.required(members, "points", path) {
                    Some(Json::Array(items)) if items.len() >= 2 => {
                        let mut previous: Option<f64> = None;
                        for (i, item) in items.iter().enumerate() {
                            let p = pp.index(i);
                            match item {
                                Json::Array(xy) if xy.len() == 2 => {
                                    let x = self.number(&xy[0], &p.index(0));
                                    let y = self.unit(&xy[1], &p.index(1));
                                    if let Some(x) = x {
                                        if let Some(prev) = previous {
                                            if x <= prev {
                                                self.fault(
                                                    &p.index(0),
                                                    format!(
                                                        "must be greater than the previous point's x ({})",
                                                        fmt_num(prev)
                                                    ),
                                                );
                                            }
                                        }
                                        previous = Some(x);
                                    }
                                    if let (Some(x), Some(y)) = (x, y) {
                                        points.push((x, y));
                                    }
                                }
                                _ => self.fault(&p, "must be a pair [x, y]"),
                            }
                        }
                    }
                    Some(Json::Array(_)) => self.fault(&pp, "must have at least 2 points"),
                    Some(other) => self.fault(&pp, format!("must be an array of [x, y] points, not {}", other.kind())),
                    None => {}
                }
                Normalizer::Curve { points }
            }
            "logistic" => {
                self.allow_keys(members, &["type", "midpoint", "steepness", "description"], path);
                let midpoint =
                    self.required(members, "midpoint", path).and_then(|v| self.number(v, &path.key("midpoint")));
                let steepness =
                    self.required(members, "steepness", path).and_then(|v| self.number(v, &path.key("steepness")));
                if steepness == Some(0.0) {
                    self.fault(&path.key("steepness"), "must not be 0");
                }
                Normalizer::Logistic { midpoint: midpoint?, steepness: steepness? }
            }
            "decay" => {
                self.allow_keys(members, &["type", "half_life", "description"], path);
                let half_life =
                    self.required(members, "half_life", path).and_then(|v| self.positive(v, &path.key("half_life")));
                Normalizer::decay(half_life?)
            }
            "map" => {
                self.allow_keys(members, &["type", "values", "default", "description"], path);
                let default = get("default").and_then(|v| self.unit(v, &path.key("default")));
                let vp = path.key("values");
                let mut values = Categories::default();
                match self.required(members, "values", path) {
                    Some(Json::Object(entries)) if !entries.is_empty() => {
                        for (k, v) in entries {
                            if let Some(n) = self.unit(v, &vp.key(k)) {
                                values.insert(k.clone(), n);
                            }
                        }
                    }
                    Some(Json::Object(_)) => self.fault(&vp, "must not be empty"),
                    Some(other) => {
                        self.fault(&vp, format!("must be an object of category to score, not {}", other.kind()))
                    }
                    None => {}
                }
                Normalizer::Map { values, default }
            }
            other => {
                let mut shown = String::new();
                write_json_string(other, &mut shown);
                self.fault(
                    &path.key("type"),
                    format!("unknown normalizer type {shown}; one of linear, log, steps, curve, logistic, decay, map"),
                );
                return None;
            }
        };
        (self.faults.len() == before).then_some(normalizer)
    }
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

impl Checker {
    fn components(
        &mut self,
        json: &Json,
        path: &Path,
        parent: Option<usize>,
        inherited: (MissingRule, OnInvalid),
        draft: &mut Draft,
    ) -> Vec<usize> {
        super::interrupts::check_stack();
        let items = match json {
            Json::Array(items) if !items.is_empty() => items,
            Json::Array(_) => {
                self.fault(path, "must not be empty");
                return Vec::new();
            }
            other => {
                self.fault(path, format!("must be an array of components, not {}", other.kind()));
                return Vec::new();
            }
        };
        let mut ids = Vec::new();
        for (i, item) in items.iter().enumerate() {
            self.ticker.tick();
            let p = path.index(i);
            let Some(members) = self.object(item, &p) else { continue };
            let is_group = item.get("components").is_some();
            if is_group {
                self.allow_keys(members, &["name", "weight", "components", "missing", "on_invalid", "description"], &p);
                if item.get("normalize").is_some() {
                    self.fault(&p.key("normalize"), "a group (with components) has no normalizer");
                }
                if item.get("input").is_some() {
                    self.fault(&p.key("input"), "a group (with components) reads no input");
                }
            } else {
                self.allow_keys(
                    members,
                    &["name", "weight", "input", "normalize", "missing", "on_invalid", "description"],
                    &p,
                );
            }
            let name = match self.required(members, "name", &p) {
                Some(Json::String(n)) if is_valid_name(n) => Some(n.clone()),
                Some(Json::String(n)) => {
                    let mut shown = String::new();
                    write_json_string(n, &mut shown);
                    self.fault(&p.key("name"), format!("{shown} {NAME_RULE}"));
                    None
                }
                Some(other) => {
                    self.fault(&p.key("name"), format!("must be a string, not {}", other.kind()));
                    None
                }
                None => None,
            };
            let weight = self.required(members, "weight", &p).and_then(|w| self.positive(w, &p.key("weight")));
            let missing = match item.get("missing") {
                Some(m) => self.missing_rule(m, &p.key("missing")).unwrap_or(inherited.0),
                None => inherited.0,
            };
            let on_invalid = match item.get("on_invalid") {
                Some(o) => self.on_invalid(o, &p.key("on_invalid")).unwrap_or(inherited.1),
                None => inherited.1,
            };
            let description = self.description(members, &p);
            let id = draft.nodes.len();
            draft.nodes.push(Node {
                name: name.clone().unwrap_or_default(),
                parent,
                children: Vec::new(),
                slot: None,
                missing,
                on_invalid,
                description,
            });
            draft.weights.push(weight.unwrap_or(1.0));
            draft.normalizers.push(None);
            draft.input_keys.push(None);
            draft.is_group.push(is_group);
            if let Some(n) = name {
                if let Some((_, first)) = draft.names.get(&n) {
                    self.fault(&p.key("name"), format!("duplicate component name \"{n}\" (first at {first})"));
                } else {
                    draft.names.insert(n.clone(), (id, p.to_string()));
                }
            }
            if is_group {
                let children = self.components(
                    item.get("components").unwrap_or(&Json::Null),
                    &p.key("components"),
                    Some(id),
                    (missing, on_invalid),
                    draft,
                );
                draft.nodes[id].children = children;
            } else {
                let key = match item.get("input") {
                    Some(v) => self.nonempty_text(v, &p.key("input")).map(str::to_string),
                    None => Some(draft.nodes[id].name.clone()),
                };
                draft.input_keys[id] = key;
                if let Some(n) = self.required(members, "normalize", &p) {
                    draft.normalizers[id] = self.normalizer(n, &p.key("normalize"));
                }
            }
            ids.push(id);
        }
        ids
    }
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
        super::interrupts::check_stack();
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

impl Model {
    /// Parses and validates a model. On failure, returns every fault found.
    pub fn parse(json: &Json) -> Result<Model, Error> {
        Model::check(json).map_err(Error::InvalidModel)
    }

    /// Every fault of a model, empty when it is valid.
    pub fn faults(json: &Json) -> Vec<Fault> {
        Model::check(json).err().unwrap_or_default()
    }

    fn check(json: &Json) -> Result<Model, Vec<Fault>> {
        // before anything below recurses over the model
        super::limits::check(json).map_err(|f| vec![f])?;
        let mut c = Checker { faults: Vec::new(), ticker: Ticker::default() };
        let root = Path::default();
        let Some(members) = c.object(json, &root) else { return Err(c.faults) };
        c.allow_keys(
            members,
            &[
                "format",
                "scale",
                "components",
                "missing",
                "on_invalid",
                "min_coverage",
                "bands",
                "segments",
                "calibration",
                "description",
            ],
            &root,
        );
        if let Some(f) = json.get("format") {
            if !matches!(f, Json::Number(v) if *v == 1.0) {
                c.fault(
                    &root.key("format"),
                    format!("must be 1, the only model format so far (found {})", f.to_text()),
                );
            }
        }
        let scale = json.get("scale").map(|s| c.positive(s, &root.key("scale"))).unwrap_or(Some(100.0));
        let missing =
            json.get("missing").map(|m| c.missing_rule(m, &root.key("missing"))).unwrap_or(Some(MissingRule::Reweight));
        let on_invalid =
            json.get("on_invalid").map(|o| c.on_invalid(o, &root.key("on_invalid"))).unwrap_or(Some(OnInvalid::Error));
        let min_coverage = json.get("min_coverage").map(|m| c.unit(m, &root.key("min_coverage"))).unwrap_or(Some(0.0));
        let bands = json.get("bands").and_then(|b| c.bands(b, &root.key("bands")));
        let calibration = json.get("calibration").and_then(|cal| {
            let p = root.key("calibration");
            let members = c.object(cal, &p)?;
            c.allow_keys(members, &["intercept", "slope"], &p);
            let a = c.required(members, "intercept", &p).and_then(|v| c.number(v, &p.key("intercept")));
            let b = c.required(members, "slope", &p).and_then(|v| c.number(v, &p.key("slope")));
            Some((a?, b?))
        });
        let description = c.description(members, &root);

        let mut draft = Draft {
            nodes: Vec::new(),
            weights: Vec::new(),
            normalizers: Vec::new(),
            input_keys: Vec::new(),
            is_group: Vec::new(),
            names: HashMap::new(),
        };
        let top = match c.required(members, "components", &root) {
            Some(comps) => c.components(
                comps,
                &root.key("components"),
                None,
                (missing.unwrap_or(MissingRule::Reweight), on_invalid.unwrap_or(OnInvalid::Error)),
                &mut draft,
            ),
            None => Vec::new(),
        };

        // Inputs: one slot per distinct key, in model order (found by a map: a model may have
        // 100,000 leaves).
        let mut inputs: Vec<InputSlot> = Vec::new();
        let mut slots: HashMap<String, usize> = HashMap::new();
        let mut slot_of = |key: &str, inputs: &mut Vec<InputSlot>| -> usize {
            *slots.entry(key.to_string()).or_insert_with(|| {
                inputs.push(InputSlot { key: key.to_string(), numeric: false, categorical: false });
                inputs.len() - 1
            })
        };
        for id in 0..draft.nodes.len() {
            if !draft.is_group[id] {
                if let Some(key) = draft.input_keys[id].clone() {
                    let s = slot_of(&key, &mut inputs);
                    draft.nodes[id].slot = Some(s);
                }
            }
        }
        let mark = |inputs: &mut Vec<InputSlot>, slot: usize, n: &Normalizer| {
            if n.is_categorical() {
                inputs[slot].categorical = true;
            } else {
                inputs[slot].numeric = true;
            }
        };
        for id in 0..draft.nodes.len() {
            if let (Some(s), Some(n)) = (draft.nodes[id].slot, &draft.normalizers[id]) {
                mark(&mut inputs, s, n);
            }
        }

        // Segments.
        let mut overrides = Vec::new();
        let mut segments = None;
        if let Some(seg) = json.get("segments") {
            let sp = root.key("segments");
            if let Some(seg_members) = c.object(seg, &sp) {
                c.allow_keys(seg_members, &["input", "overrides", "description"], &sp);
                c.description(seg_members, &sp);
                let key = c.required(seg_members, "input", &sp).and_then(|k| c.nonempty_text(k, &sp.key("input")));
                let mut by_category = Categories::default();
                let op = sp.key("overrides");
                if let Some(ov) = c.required(seg_members, "overrides", &sp) {
                    if let Some(entries) = c.object(ov, &op) {
                        for (category, body) in entries {
                            let p = op.key(category);
                            let Some(ov_members) = c.object(body, &p) else { continue };
                            c.allow_keys(ov_members, &["weights", "normalize", "bands", "description"], &p);
                            c.description(ov_members, &p);
                            let mut weights = draft.weights.clone();
                            let mut normalizers = draft.normalizers.clone();
                            if let Some(w) = body.get("weights") {
                                let wp = p.key("weights");
                                if let Some(entries) = c.object(w, &wp) {
                                    for (name, value) in entries {
                                        let vp = wp.key(name);
                                        let Some(v) = c.number(value, &vp) else { continue };
                                        if v < 0.0 {
                                            c.fault(&vp, format!("must be 0 or more ({})", fmt_num(v)));
                                        }
                                        match draft.names.get(name) {
                                            Some((id, _)) => weights[*id] = v,
                                            None => c.fault(&vp, format!("no component is named \"{name}\"")),
                                        }
                                    }
                                }
                            }
                            if let Some(n) = body.get("normalize") {
                                let np = p.key("normalize");
                                if let Some(entries) = c.object(n, &np) {
                                    for (name, value) in entries {
                                        let vp = np.key(name);
                                        match draft.names.get(name) {
                                            Some((id, _)) if !draft.is_group[*id] => {
                                                let parsed = c.normalizer(value, &vp);
                                                if let (Some(norm), Some(s)) = (&parsed, draft.nodes[*id].slot) {
                                                    mark(&mut inputs, s, norm);
                                                }
                                                normalizers[*id] = parsed;
                                            }
                                            Some(_) => c.fault(
                                                &vp,
                                                format!("\"{name}\" is a group; only leaves have normalizers"),
                                            ),
                                            None => c.fault(&vp, format!("no component is named \"{name}\"")),
                                        }
                                    }
                                }
                            }
                            let ov_bands = match body.get("bands") {
                                Some(b) => c.bands(b, &p.key("bands")),
                                None => bands.clone(),
                            };
                            by_category.insert(category.clone(), overrides.len());
                            overrides.push((category.clone(), weights, normalizers, ov_bands));
                        }
                    }
                }
                if let Some(k) = key {
                    let s = slot_of(k, &mut inputs);
                    inputs[s].categorical = true;
                    segments = Some(Segments { slot: s, overrides: by_category });
                }
            }
        }

        if !c.faults.is_empty() {
            return Err(c.faults);
        }
        let nodes = draft.nodes;
        let variant = |given: Vec<f64>, normalizers: Vec<Option<Normalizer>>, bands: Option<Vec<Band>>| {
            let weights = working_weights(&nodes, &top, &given);
            let shares = compute_shares(&nodes, &top, &weights);
            let input = ProgramInput { nodes: &nodes, weights: &weights, shares: &shares, normalizers: &normalizers };
            let (program, accumulators) = compile_program(&input, &top);
            let top_weight = weight_in_force(&top, &weights);
            let flat = program.iter().any(|step| matches!(step.kind, StepKind::Leaf { .. }))
                && program
                    .iter()
                    .all(|step| !matches!(step.kind, StepKind::Group { full_weight, .. } if full_weight <= 0.0));
            Variant {
                weights: given,
                working_weights: weights,
                bands,
                program,
                accumulators,
                top_weight: (top_weight, 1.0 / top_weight),
                flat,
            }
        };
        let base = variant(draft.weights, draft.normalizers, bands);
        let overrides = overrides.into_iter().map(|(name, w, n, b)| (name, variant(w, n, b))).collect();
        Ok(Model {
            scale: scale.unwrap_or(100.0),
            min_coverage: min_coverage.unwrap_or(0.0),
            calibration,
            description,
            nodes,
            top,
            inputs,
            base,
            segments,
            overrides,
        })
    }
}
