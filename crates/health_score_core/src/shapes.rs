//! Fitted shapes: each leaf's normalizer learned from outcomes together with the weights.
//!
//! A numeric leaf becomes a `curve` through knots at quantiles of its training values; a
//! `map` leaf gets a value per category seen often enough, the rest sharing its `default`.
//! The fit is a logistic regression that is additive in the leaves:
//! `logit = b + Σ_j u_j(x_j)`, where `u_j` is piecewise linear between the knots (or one value
//! per category). With `u_j` at the first knot fixed at 0 and the differences between
//! neighbouring knots `δ` as the variables, monotone shapes are bounds on `δ` (the solver of
//! `fit` handles bounds), and the smoothness penalty `(λ/2) Σ δ²` keeps neighbouring knots
//! close. Each leaf's health is `h_j = −u_j`; its weight is the range of `h_j` over its knots
//! and its normalized values are `(h_j − min h_j) / range`, so for fully counted inputs the
//! score is `scale · (b − Σ min h_j − logit) / Σ range`: strictly decreasing in the fitted
//! log-odds, exactly as with fitted weights.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::bytes::Reader;
use super::error::{reserve, Error};
use super::fit::{design_model, tree_weights_json, MIN_CLASS_ROWS, UPPER};
use super::json::Json;
use super::model::Model;
use super::normalize::Normalizer;
use super::parallel;
use super::score::{NodeResult, Status};
use super::solver::{self, Bounds, Compensated, Minimum, Objective};
use super::value::Value;

pub const DEFAULT_KNOTS: usize = 6;
pub const MAX_KNOTS: usize = 50;
pub const DEFAULT_MIN_CATEGORY_ROWS: u64 = 10;
/// The penalty on each difference between neighbouring knots (and on each category's value),
/// per unit of the mean log-loss.
pub const DEFAULT_SMOOTHNESS: f64 = 1e-3;
/// The weight of a leaf whose fitted shape is flat (or that could not be fitted).
const MIN_WEIGHT: f64 = -UPPER;
/// A category id standing for "imputed" in a categorical column.
const IMPUTED: u32 = u32::MAX;

/// Which way a numeric leaf's normalized value may move as its input grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Increasing,
    Decreasing,
    Free,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Increasing => "increasing",
            Direction::Decreasing => "decreasing",
            Direction::Free => "none",
        }
    }

    /// The direction of a hand normalizer: its own where it is monotone, none otherwise (and
    /// none for a constant one).
    pub fn of(normalizer: &Normalizer) -> Direction {
        fn of_values(values: impl Iterator<Item = f64> + Clone) -> Direction {
            let pairs = values.clone().zip(values.skip(1));
            let up = pairs.clone().all(|(a, b)| a <= b);
            let down = pairs.clone().all(|(a, b)| a >= b);
            let flat = pairs.clone().all(|(a, b)| a == b);
            match (up, down, flat) {
                (_, _, true) => Direction::Free,
                (true, _, _) => Direction::Increasing,
                (_, true, _) => Direction::Decreasing,
                _ => Direction::Free,
            }
        }
        match normalizer {
            Normalizer::Linear { invert, .. } | Normalizer::Log { invert, .. } => {
                if *invert {
                    Direction::Decreasing
                } else {
                    Direction::Increasing
                }
            }
            Normalizer::Decay { .. } => Direction::Decreasing,
            Normalizer::Logistic { steepness, .. } => {
                if *steepness > 0.0 {
                    Direction::Increasing
                } else {
                    Direction::Decreasing
                }
            }
            Normalizer::Steps { steps, below } => of_values(std::iter::once(*below).chain(steps.iter().map(|s| s.1))),
            Normalizer::Curve { points } => of_values(points.iter().map(|p| p.1)),
            Normalizer::Map { .. } => Direction::Free,
        }
    }
}

/// The options of a fit of shapes (`fit`'s options object; the keys it does not read are
/// checked by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeOptions {
    pub knots: usize,
    pub min_category_rows: u64,
    pub smoothness: f64,
    pub l2: f64,
    pub refit_impute: bool,
    /// Per component name, the direction that replaces its hand normalizer's.
    pub monotone: Vec<(String, Direction)>,
}

impl Default for ShapeOptions {
    fn default() -> ShapeOptions {
        ShapeOptions {
            knots: DEFAULT_KNOTS,
            min_category_rows: DEFAULT_MIN_CATEGORY_ROWS,
            smoothness: DEFAULT_SMOOTHNESS,
            l2: super::fit::DEFAULT_L2,
            refit_impute: false,
            monotone: Vec::new(),
        }
    }
}

fn bad_option(key: &str, value: &Json, rule: &str) -> Error {
    let mut text = value.to_text();
    if text.chars().count() > 200 {
        text = text.chars().take(200).collect::<String>() + "…";
    }
    Error::InvalidArgument { message: format!("fit: options.{key}: must be {rule}, not {text}"), hint: None }
}

impl ShapeOptions {
    /// Reads the shape options of `fit`'s options object, checking each against `model`.
    pub fn from_json(options: &Json, model: &Model) -> Result<ShapeOptions, Error> {
        let mut out = ShapeOptions::default();
        if let Some(v) = options.get("knots") {
            match v {
                Json::Number(n) if n.fract() == 0.0 && (2.0..=MAX_KNOTS as f64).contains(n) => out.knots = *n as usize,
                _ => return Err(bad_option("knots", v, &format!("a whole number from 2 to {MAX_KNOTS}"))),
            }
        }
        if let Some(v) = options.get("min_category_rows") {
            match v {
                Json::Number(n) if n.fract() == 0.0 && (1.0..=1e15).contains(n) => out.min_category_rows = *n as u64,
                _ => return Err(bad_option("min_category_rows", v, "a whole number of rows, at least 1")),
            }
        }
        if let Some(v) = options.get("smoothness") {
            match v {
                Json::Number(n) if (0.0..=1e6).contains(n) => out.smoothness = *n,
                _ => return Err(bad_option("smoothness", v, "a number from 0 to 1e6")),
            }
        }
        if let Some(v) = options.get("l2") {
            match v {
                Json::Number(n) if (0.0..=1e6).contains(n) => out.l2 = *n,
                _ => return Err(bad_option("l2", v, "a number from 0 to 1e6")),
            }
        }
        if let Some(v) = options.get("refit_impute") {
            match v {
                Json::Bool(b) => out.refit_impute = *b,
                _ => return Err(bad_option("refit_impute", v, "true or false")),
            }
        }
        if let Some(v) = options.get("monotone") {
            let Json::Object(members) = v else {
                return Err(bad_option(
                    "monotone",
                    v,
                    "an object of component names to \"increasing\", \"decreasing\" or \"none\"",
                ));
            };
            for (name, direction) in members {
                let key = format!("monotone.{name}");
                let direction = match direction {
                    Json::String(s) if s == "increasing" => Direction::Increasing,
                    Json::String(s) if s == "decreasing" => Direction::Decreasing,
                    Json::String(s) if s == "none" => Direction::Free,
                    other => return Err(bad_option(&key, other, "\"increasing\", \"decreasing\" or \"none\"")),
                };
                let Some(id) = model.nodes.iter().position(|n| &n.name == name) else {
                    return Err(Error::InvalidArgument {
                        message: format!("fit: options.{key}: the model has no component of that name"),
                        hint: Some("name a leaf of the model that reads a number".into()),
                    });
                };
                let categorical = model.base_normalizer(id).is_none_or(Normalizer::is_categorical);
                if categorical && direction != Direction::Free {
                    return Err(Error::InvalidArgument {
                        message: format!("fit: options.{key}: only a leaf that reads a number has a direction"),
                        hint: Some("a group, or a map's categories, have no order".into()),
                    });
                }
                out.monotone.push((name.clone(), direction));
            }
        }
        Ok(out)
    }
}

impl Model {
    /// A leaf's normalizer in the base model.
    pub fn base_normalizer(&self, id: usize) -> Option<&Normalizer> {
        self.base.program.iter().find(|s| s.id == id).and_then(|s| match &s.kind {
            super::model::StepKind::Leaf { normalizer, .. } => Some(normalizer),
            super::model::StepKind::Group { .. } => None,
        })
    }
}

/// The model whose rows a fit of shapes reads: the overrides lose their `weights` (as in `fit`
/// without `by_segment`) and their `normalize` (the fitted shape applies to every segment).
pub fn shape_design_model(model: &Json) -> Json {
    let mut out = design_model(model, false);
    if let Json::Object(members) = &mut out {
        for (k, segments) in members.iter_mut() {
            if k != "segments" {
                continue;
            }
            let Json::Object(fields) = segments else { continue };
            for (k, overrides) in fields.iter_mut() {
                if k != "overrides" {
                    continue;
                }
                let Json::Object(overrides) = overrides else { continue };
                for (_, o) in overrides.iter_mut() {
                    if let Json::Object(fields) = o {
                        fields.retain(|(k, _)| k != "normalize");
                    }
                }
            }
        }
    }
    out
}

/// What a row shows of one leaf.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation<'a> {
    Number(f64),
    Category(std::borrow::Cow<'a, str>),
    /// Counted with an imputed value (its own rule or a group's).
    Imputed,
}

/// One scored row's observations, per leaf in model order; None when some leaf was left out
/// and its siblings reweighted (the row is not additive in the leaves, as in `fit`).
pub fn observe<'v>(model: &Model, nodes: &[NodeResult], values: &'v [Value<'v>]) -> Option<Vec<Observation<'v>>> {
    let mut out = Vec::new();
    for (id, node) in model.nodes.iter().enumerate() {
        let Some(slot) = node.slot else { continue };
        let r = nodes[id];
        let observation = match (r.status, r.normalized) {
            (Status::Ok, Some(_)) => {
                let value = &values[slot];
                match model.base_normalizer(id).map(Normalizer::is_categorical) {
                    Some(true) => Observation::Category(value.category()?),
                    _ => Observation::Number(value.number().ok()?),
                }
            }
            (_, Some(_)) => Observation::Imputed,
            (_, None) => {
                model.imputed_ancestor(id, nodes)?;
                Observation::Imputed
            }
        };
        out.push(observation);
    }
    Some(out)
}

/// A row's observations as bytes (what `_fit_shape_row` returns): per leaf a tag, 0 imputed,
/// 1 a number (8 bytes), 2 a category (its length as 4 bytes, then its UTF-8).
pub fn encode_observations(observations: &[Observation<'_>], out: &mut Vec<u8>) {
    out.clear();
    for o in observations {
        match o {
            Observation::Imputed => out.push(0),
            Observation::Number(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Observation::Category(c) => {
                out.push(2);
                out.extend_from_slice(&(c.len() as u32).to_le_bytes());
                out.extend_from_slice(c.as_bytes());
            }
        }
    }
}

/// One leaf's observations over the rows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Column {
    /// NaN where imputed.
    Numeric(Vec<f64>),
    /// Per row an index into `names` (IMPUTED where imputed).
    Categorical { ids: Vec<u32>, names: Vec<String>, index: HashMap<String, u32> },
}

/// The rows of a fit of shapes, as collected (in any order, from any number of workers).
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeData {
    pub(crate) columns: Vec<Column>,
    pub(crate) y: Vec<bool>,
    /// Rows with an outcome left out of the fit (a leaf reweighted away).
    pub excluded: u64,
}

fn malformed() -> Error {
    Error::InvalidArgument { message: "_fit_shapes: a malformed row of observations".into(), hint: None }
}

impl ShapeData {
    /// Empty, with a column per leaf of `model` (categorical for a `map` leaf).
    pub fn new(model: &Model) -> ShapeData {
        let columns = model
            .leaves()
            .into_iter()
            .map(|id| {
                if model.base_normalizer(id).is_some_and(Normalizer::is_categorical) {
                    Column::Categorical { ids: Vec::new(), names: Vec::new(), index: HashMap::new() }
                } else {
                    Column::Numeric(Vec::new())
                }
            })
            .collect();
        ShapeData { columns, y: Vec::new(), excluded: 0 }
    }

    /// With columns added after the model's leaves: numeric ones, then categorical ones.
    pub fn with_extra(mut self, numeric: usize, categorical: usize) -> ShapeData {
        self.columns.extend((0..numeric).map(|_| Column::Numeric(Vec::new())));
        self.columns.extend((0..categorical).map(|_| Column::Categorical {
            ids: Vec::new(),
            names: Vec::new(),
            index: HashMap::new(),
        }));
        self
    }

    /// How many distinct categories column `c` holds (0 for a numeric column).
    pub fn categories(&self, c: usize) -> usize {
        match &self.columns[c] {
            Column::Categorical { names, .. } => names.len(),
            Column::Numeric(_) => 0,
        }
    }

    /// Whether column `c` has a value (one not imputed) in some row.
    pub fn observed(&self, c: usize) -> bool {
        match &self.columns[c] {
            Column::Numeric(values) => values.iter().any(|v| !v.is_nan()),
            Column::Categorical { ids, .. } => ids.iter().any(|&id| id != IMPUTED),
        }
    }

    /// The first category column `c` saw, if it is categorical and saw one.
    pub fn first_category(&self, c: usize) -> Option<&str> {
        match &self.columns[c] {
            Column::Categorical { names, .. } => names.first().map(String::as_str),
            Column::Numeric(_) => None,
        }
    }

    /// What row `row` shows of column `c`.
    pub fn observation(&self, row: usize, c: usize) -> Observation<'_> {
        match &self.columns[c] {
            Column::Numeric(v) if v[row].is_nan() => Observation::Imputed,
            Column::Numeric(v) => Observation::Number(v[row]),
            Column::Categorical { ids, .. } if ids[row] == IMPUTED => Observation::Imputed,
            Column::Categorical { ids, names, .. } => Observation::Category(names[ids[row] as usize].as_str().into()),
        }
    }

    pub fn churned_at(&self, row: usize) -> bool {
        self.y[row]
    }

    pub fn rows(&self) -> usize {
        self.y.len()
    }

    pub fn churned(&self) -> usize {
        self.y.iter().filter(|&&c| c).count()
    }

    /// Adds a row of observations (leaves in model order).
    pub fn add(&mut self, observations: &[Observation<'_>], churned: bool) -> Result<(), Error> {
        let mut bytes = Vec::new();
        encode_observations(observations, &mut bytes);
        self.add_encoded(&bytes, churned)
    }

    /// Adds a row from its encoded observations (`encode_observations`); an empty encoding is
    /// a row left out.
    pub fn add_encoded(&mut self, bytes: &[u8], churned: bool) -> Result<(), Error> {
        self.add_parts(bytes, &[], churned)
    }

    /// Adds a row whose first columns come encoded and whose last `extra.len()` columns (the
    /// columns `with_extra` added) come as observations.
    pub fn add_parts(&mut self, bytes: &[u8], extra: &[Observation<'_>], churned: bool) -> Result<(), Error> {
        if bytes.is_empty() {
            self.excluded += 1;
            return Ok(());
        }
        let mut r = Reader::new(bytes);
        reserve(&mut self.y, 1, "fit")?;
        let encoded = self.columns.len().checked_sub(extra.len()).ok_or_else(malformed)?;
        for (column, observation) in self.columns[encoded..].iter_mut().zip(extra) {
            match (column, observation) {
                (Column::Numeric(values), Observation::Number(v)) => push(values, *v)?,
                (Column::Numeric(values), _) => push(values, f64::NAN)?,
                (Column::Categorical { ids, names, index }, Observation::Category(c)) => {
                    let id = intern(names, index, c)?;
                    push(ids, id)?;
                }
                (Column::Categorical { ids, .. }, _) => push(ids, IMPUTED)?,
            }
        }
        for column in &mut self.columns[..encoded] {
            let tag = r.u8().ok_or_else(malformed)?;
            match (column, tag) {
                (Column::Numeric(values), 0) => push(values, f64::NAN)?,
                (Column::Numeric(values), 1) => push(values, r.f64().ok_or_else(malformed)?)?,
                (Column::Categorical { ids, .. }, 0) => push(ids, IMPUTED)?,
                (Column::Categorical { ids, names, index }, 2) => {
                    let text = std::str::from_utf8(r.bytes().ok_or_else(malformed)?).map_err(|_| malformed())?;
                    let id = intern(names, index, text)?;
                    push(ids, id)?;
                }
                _ => return Err(malformed()),
            }
        }
        if !r.rest().is_empty() {
            return Err(malformed());
        }
        self.y.push(churned);
        Ok(())
    }

    /// Appends another worker's rows.
    pub fn append(&mut self, other: &ShapeData) -> Result<(), Error> {
        if other.columns.len() != self.columns.len() {
            return Err(malformed());
        }
        for (mine, theirs) in self.columns.iter_mut().zip(&other.columns) {
            match (mine, theirs) {
                (Column::Numeric(a), Column::Numeric(b)) => {
                    reserve(a, b.len(), "fit")?;
                    a.extend_from_slice(b);
                }
                (
                    Column::Categorical { ids, names, index },
                    Column::Categorical { ids: other_ids, names: other_names, .. },
                ) => {
                    let mut map = Vec::with_capacity(other_names.len());
                    for name in other_names {
                        map.push(intern(names, index, name)?);
                    }
                    reserve(ids, other_ids.len(), "fit")?;
                    ids.extend(other_ids.iter().map(|&i| if i == IMPUTED { IMPUTED } else { map[i as usize] }));
                }
                _ => return Err(malformed()),
            }
        }
        reserve(&mut self.y, other.y.len(), "fit")?;
        self.y.extend_from_slice(&other.y);
        self.excluded += other.excluded;
        Ok(())
    }

    pub fn to_bytes(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let put = |out: &mut Vec<u8>, v: u64| out.extend_from_slice(&v.to_le_bytes());
        let size = 24
            + self.y.len()
            + self
                .columns
                .iter()
                .map(|c| match c {
                    Column::Numeric(v) => 9 + 8 * v.len(),
                    Column::Categorical { ids, names, .. } => {
                        17 + 4 * ids.len() + names.iter().map(|n| 4 + n.len()).sum::<usize>()
                    }
                })
                .sum::<usize>();
        reserve(out, size, "fit")?;
        put(out, self.columns.len() as u64);
        put(out, self.y.len() as u64);
        put(out, self.excluded);
        out.extend(self.y.iter().map(|&c| c as u8));
        for column in &self.columns {
            match column {
                Column::Numeric(values) => {
                    out.push(1);
                    for v in values {
                        put(out, v.to_bits());
                    }
                }
                Column::Categorical { ids, names, .. } => {
                    out.push(2);
                    put(out, names.len() as u64);
                    for n in names {
                        out.extend_from_slice(&(n.len() as u32).to_le_bytes());
                        out.extend_from_slice(n.as_bytes());
                    }
                    for &i in ids {
                        out.extend_from_slice(&i.to_le_bytes());
                    }
                }
            }
        }
        Ok(())
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<ShapeData> {
        let mut r = Reader::new(bytes);
        let leaves = r.u64()? as usize;
        let rows = r.u64()? as usize;
        let excluded = r.u64()?;
        let y: Vec<bool> = r.take(rows)?.iter().map(|&b| b != 0).collect();
        let mut columns = Vec::new();
        for _ in 0..leaves.min(r.rest().len()) {
            match r.u8()? {
                1 => {
                    let raw = r.take(rows.checked_mul(8)?)?;
                    columns.push(Column::Numeric(
                        raw.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))).collect(),
                    ));
                }
                2 => {
                    let count = r.u64()? as usize;
                    let mut names = Vec::new();
                    let mut index = HashMap::new();
                    for i in 0..count.min(r.rest().len()) {
                        let name = std::str::from_utf8(r.bytes()?).ok()?.to_string();
                        index.insert(name.clone(), i as u32);
                        names.push(name);
                    }
                    let raw = r.take(rows.checked_mul(4)?)?;
                    let ids: Vec<u32> =
                        raw.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
                    if ids.iter().any(|&i| i != IMPUTED && i as usize >= names.len()) {
                        return None;
                    }
                    columns.push(Column::Categorical { ids, names, index });
                }
                _ => return None,
            }
        }
        (columns.len() == leaves && r.rest().is_empty()).then_some(ShapeData { columns, y, excluded })
    }
}

fn push<T>(v: &mut Vec<T>, value: T) -> Result<(), Error> {
    reserve(v, 1, "fit")?;
    v.push(value);
    Ok(())
}

fn intern(names: &mut Vec<String>, index: &mut HashMap<String, u32>, text: &str) -> Result<u32, Error> {
    if let Some(&id) = index.get(text) {
        return Ok(id);
    }
    let id = names.len() as u32;
    if id == IMPUTED {
        return Err(Error::InvalidArgument { message: "fit: more than 4 billion categories".into(), hint: None });
    }
    reserve(names, 1, "fit")?;
    names.push(text.to_string());
    index.insert(text.to_string(), id);
    Ok(id)
}

/// How a leaf enters the regression.
#[derive(Debug, Clone)]
enum Basis {
    /// Knots ascending; the variables `first..first + knots − 1` are the differences δ between
    /// neighbouring knots' values (the first knot's value is 0).
    Curve { knots: Vec<f64>, first: usize, direction: Direction },
    /// Per category (in the canonical order of the sorted names) its variable; categories seen
    /// too rarely share `other`.
    Map { names: Vec<String>, var_of: Vec<usize>, kept: Vec<(String, usize)>, other: Option<usize>, rows: Vec<u64> },
    /// Too few distinct values to shape: left as it was, at the smallest weight.
    Fixed,
}

/// The fitted shape of one leaf.
#[derive(Debug, Clone, PartialEq)]
pub struct LeafShape {
    /// The leaf's node id.
    pub leaf: usize,
    /// The new `normalize` object, None when the leaf was left as it was.
    pub normalizer: Option<Json>,
    /// The leaf's health weight: the range of its fitted health over its knots or categories.
    pub weight: f64,
    /// The direction the shape was held to (numeric leaves).
    pub direction: Option<Direction>,
    /// The weight sits at the smallest weight (a flat shape, or one not fitted).
    pub at_bound: bool,
    /// The refitted impute value, when asked for and the leaf was imputed in some row.
    pub impute: Option<f64>,
    /// The fitted churn log-odds the leaf adds, as the regression gave them.
    pub log_odds: LeafLogOdds,
}

/// A leaf's term of the fitted log-odds.
#[derive(Debug, Clone, PartialEq)]
pub struct LeafLogOdds {
    /// Knots with their values (a numeric leaf), interpolated linearly, flat beyond the ends.
    pub knots: Vec<(f64, f64)>,
    /// Per category kept, its value (a map leaf); `other` for the rest.
    pub categories: Vec<(String, f64)>,
    pub other: Option<f64>,
    /// For a row where the leaf was imputed.
    pub imputed: Option<f64>,
}

impl LeafShape {
    /// The log-odds the leaf adds for a row showing `observation`.
    pub fn log_odds_of(&self, observation: &Observation<'_>) -> f64 {
        self.log_odds.of(observation)
    }

    /// The `n` a missing value takes on the fitted shape's scale (clamped to [0, 1]): where its
    /// fitted log-odds fall between the leaf's healthiest and least healthy values. None when
    /// no row imputed the leaf.
    pub fn imputed_value(&self) -> Option<f64> {
        let u = self.log_odds.imputed?;
        let healths = self
            .log_odds
            .knots
            .iter()
            .map(|k| -k.1)
            .chain(self.log_odds.categories.iter().map(|c| -c.1))
            .chain(self.log_odds.other.map(|o| -o));
        let lo = healths.clone().fold(f64::INFINITY, f64::min);
        let hi = healths.fold(f64::NEG_INFINITY, f64::max);
        Some(unit(-u, lo, hi - lo))
    }
}

impl LeafLogOdds {
    fn of(&self, observation: &Observation<'_>) -> f64 {
        match observation {
            Observation::Imputed => self.imputed.unwrap_or(0.0),
            Observation::Number(x) => {
                let k = &self.knots;
                if k.is_empty() {
                    return 0.0;
                }
                if *x <= k[0].0 {
                    return k[0].1;
                }
                if *x >= k[k.len() - 1].0 {
                    return k[k.len() - 1].1;
                }
                let i = k.partition_point(|p| p.0 <= *x) - 1;
                let lambda = (x - k[i].0) / (k[i + 1].0 - k[i].0);
                (1.0 - lambda) * k[i].1 + lambda * k[i + 1].1
            }
            Observation::Category(c) => {
                self.categories.iter().find(|(n, _)| n == c.as_ref()).map(|p| p.1).or(self.other).unwrap_or(0.0)
            }
        }
    }
}

impl ShapeFit {
    /// The fitted churn log-odds of a row's observations (leaves in model order).
    pub fn log_odds(&self, observations: &[Observation<'_>]) -> f64 {
        self.intercept + self.leaves.iter().zip(observations).map(|(l, o)| l.log_odds.of(o)).sum::<f64>()
    }
}

/// A fit of shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeFit {
    pub intercept: f64,
    /// The solver's variables (intercept, then each leaf's), a start for a nearby fit.
    pub(crate) theta: Vec<f64>,
    pub leaves: Vec<LeafShape>,
    pub rows: u64,
    pub excluded: u64,
    pub iterations: usize,
    pub gradient_norm: f64,
}

/// The rows sorted and merged, with each leaf's key: the number, or the rank of the category
/// among the sorted names; NaN where imputed.
struct Rows {
    keys: Vec<f64>,
    y: Vec<f64>,
    count: Vec<f64>,
    /// Per row the log-odds added to the regression's (0 without an offset).
    offset: Vec<f64>,
}

/// Per column, its categories' names sorted, and each category id's rank among them (empty
/// for a numeric column).
fn category_ranks(data: &ShapeData) -> (Vec<Vec<String>>, Vec<Vec<f64>>) {
    let mut sorted_names = Vec::new();
    let mut ranks: Vec<Vec<f64>> = Vec::new();
    for column in &data.columns {
        if let Column::Categorical { names, .. } = column {
            let mut order: Vec<usize> = (0..names.len()).collect();
            order.sort_by(|&a, &b| names[a].cmp(&names[b]));
            let mut rank = vec![0.0; names.len()];
            for (r, &i) in order.iter().enumerate() {
                rank[i] = r as f64;
            }
            sorted_names.push(order.iter().map(|&i| names[i].clone()).collect());
            ranks.push(rank);
        } else {
            sorted_names.push(Vec::new());
            ranks.push(Vec::new());
        }
    }
    (sorted_names, ranks)
}

/// Row `row`'s key in column `c`: the number, or the category's rank; NaN where imputed.
fn key(data: &ShapeData, ranks: &[Vec<f64>], row: usize, c: usize) -> f64 {
    match &data.columns[c] {
        Column::Numeric(v) => v[row],
        Column::Categorical { ids, .. } => {
            let id = ids[row];
            if id == IMPUTED {
                f64::NAN
            } else {
                ranks[c][id as usize]
            }
        }
    }
}

/// The rows' order by outcome and then every column's key (and the offset), which depends
/// only on the rows, not on the order they arrived in.
fn sorted_order(data: &ShapeData, ranks: &[Vec<f64>], offset: Option<&[f64]>) -> Vec<usize> {
    let columns = data.columns.len();
    let rows = data.y.len();
    // the offset sorts (and merges) as one more key
    let width = columns + offset.is_some() as usize;
    let mut dense = Vec::with_capacity(rows * width);
    for row in 0..rows {
        for c in 0..columns {
            dense.push(key(data, ranks, row, c));
        }
        if let Some(o) = offset {
            dense.push(o[row]);
        }
    }
    super::fit::sorted_rows(&dense, width, (width > 0).then_some(0), &data.y)
}

/// The rows of `columns` in the order of `order` (from `sorted_order`): with `merge`, equal
/// rows (outcome, keys and offset) as one row with a count.
fn rows_in_order(
    data: &ShapeData,
    ranks: &[Vec<f64>],
    columns: &[usize],
    order: &[usize],
    offset: Option<&[f64]>,
    merge: bool,
) -> Rows {
    let mut out = Rows { keys: Vec::new(), y: Vec::new(), count: Vec::new(), offset: Vec::new() };
    out.keys.reserve(order.len() * columns.len());
    let mut last: Option<usize> = None;
    let same = |l: usize, i: usize| {
        data.y[l] == data.y[i]
            && offset.is_none_or(|o| o[l].to_bits() == o[i].to_bits())
            && columns.iter().all(|&c| key(data, ranks, l, c).to_bits() == key(data, ranks, i, c).to_bits())
    };
    for &i in order {
        if let Some(l) = last.filter(|_| merge) {
            if same(l, i) {
                *out.count.last_mut().expect("a row was pushed") += 1.0;
                continue;
            }
        }
        out.keys.extend(columns.iter().map(|&c| key(data, ranks, i, c)));
        out.offset.push(offset.map_or(0.0, |o| o[i]));
        out.y.push(if data.y[i] { 1.0 } else { 0.0 });
        out.count.push(1.0);
        last = Some(i);
    }
    out
}

/// `knots` values at evenly spaced quantiles of `values` (the lowest and highest included),
/// without repeats; each found by selection, not by sorting all of them.
fn quantile_knots(mut values: Vec<f64>, knots: usize) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    if values.is_empty() {
        return out;
    }
    let last = (values.len() - 1) as f64;
    let mut lower = 0;
    for k in 0..knots {
        let at = (k as f64 * last / (knots - 1) as f64).round() as usize;
        // the positions rise, so each selection only looks above the one before
        let (_, v, _) = values[lower..].select_nth_unstable_by(at - lower, f64::total_cmp);
        let v = *v;
        lower = at;
        if out.last() != Some(&v) {
            out.push(v);
        }
    }
    out
}

/// The regression: rows, each leaf's basis, and the penalty and bounds of each variable.
struct Problem {
    /// The rows' outcomes, counts and offsets (their keys are in `codes` and `lambdas`).
    rows: Rows,
    leaves: usize,
    bases: Vec<Basis>,
    /// Per leaf, the variable of "imputed" (when some row imputed it).
    imputed: Vec<Option<usize>>,
    penalty: Vec<f64>,
    /// The curve blocks (first variable, length): u = prefix sums of δ within each.
    blocks: Vec<(usize, usize)>,
    /// What each row shows of the leaves, in blocks of leaves (one, or a regression's blocks
    /// shared with one more leaf's: `Prepared::with_leaves_of`).
    cells: Vec<Arc<Cells>>,
    /// Per row c·p·q at the θ of the last `value_gradient` call, for `hessian`.
    weights: Mutex<Vec<f64>>,
}

/// Per row and leaf (row-major, `leaves` a row) what the row shows, found once instead of on
/// every pass: `NOTHING`, a variable with weight 1 (`DIRECT` set: a category, or imputed), or
/// the variable of the upper knot of the curve's interval holding the value, weighing `λ`
/// (`lambdas`), the lower knot's (the variable before, when `LOWER` is set: the first knot's
/// value is 0 and has none) weighing `1 − λ`.
struct Cells {
    leaves: usize,
    codes: Vec<u32>,
    lambdas: Vec<f64>,
}

const NOTHING: u32 = u32::MAX;
const DIRECT: u32 = 1 << 31;
const LOWER: u32 = 1 << 30;
const VARIABLE: u32 = LOWER - 1;

impl Problem {
    fn new(
        rows: Rows,
        leaves: usize,
        bases: Vec<Basis>,
        imputed: Vec<Option<usize>>,
        penalty: Vec<f64>,
        blocks: Vec<(usize, usize)>,
    ) -> Problem {
        let n = rows.y.len();
        let mut codes = Vec::with_capacity(n * leaves);
        let mut lambdas = Vec::with_capacity(n * leaves);
        for row in 0..n {
            for (leaf, &x) in rows.keys[row * leaves..(row + 1) * leaves].iter().enumerate() {
                let (code, lambda) = if x.is_nan() {
                    (imputed[leaf].map_or(NOTHING, |v| v as u32 | DIRECT), 0.0)
                } else {
                    match &bases[leaf] {
                        Basis::Curve { knots, first, .. } => {
                            let k = knots.len();
                            let (i, lambda) = if x <= knots[0] {
                                (0, 0.0)
                            } else if x >= knots[k - 1] {
                                (k - 2, 1.0)
                            } else {
                                // the knot interval [t_i, t_i+1) holding x
                                let i = knots.partition_point(|&t| t <= x) - 1;
                                (i, (x - knots[i]) / (knots[i + 1] - knots[i]))
                            };
                            ((first + i) as u32 | if i >= 1 { LOWER } else { 0 }, lambda)
                        }
                        Basis::Map { var_of, .. } => (var_of[x as usize] as u32 | DIRECT, 0.0),
                        Basis::Fixed => (NOTHING, 0.0),
                    }
                };
                codes.push(code);
                lambdas.push(lambda);
            }
        }
        let rows = Rows { keys: Vec::new(), ..rows };
        let cells = vec![Arc::new(Cells { leaves, codes, lambdas })];
        Problem { rows, leaves, bases, imputed, penalty, blocks, cells, weights: Mutex::default() }
    }

    /// The same problem over one row in `n` (in the rows' order).
    fn every(&self, n: usize) -> Problem {
        let picked: Vec<usize> = (0..self.rows.y.len()).step_by(n).collect();
        let rows = Rows {
            keys: Vec::new(),
            y: picked.iter().map(|&i| self.rows.y[i]).collect(),
            count: picked.iter().map(|&i| self.rows.count[i]).collect(),
            offset: picked.iter().map(|&i| self.rows.offset[i]).collect(),
        };
        Problem {
            rows,
            leaves: self.leaves,
            bases: self.bases.clone(),
            imputed: self.imputed.clone(),
            penalty: self.penalty.clone(),
            blocks: self.blocks.clone(),
            cells: self
                .cells
                .iter()
                .map(|c| {
                    let row = |i: usize| i * c.leaves..(i + 1) * c.leaves;
                    Arc::new(Cells {
                        leaves: c.leaves,
                        codes: picked.iter().flat_map(|&i| c.codes[row(i)].iter().copied()).collect(),
                        lambdas: picked.iter().flat_map(|&i| c.lambdas[row(i)].iter().copied()).collect(),
                    })
                })
                .collect(),
            weights: Mutex::default(),
        }
    }

    /// u from δ: prefix sums within each curve block.
    fn to_u(&self, theta: &[f64]) -> Vec<f64> {
        let mut u = theta.to_vec();
        for &(first, len) in &self.blocks {
            for i in first + 1..first + len {
                u[i] += u[i - 1];
            }
        }
        u
    }
}

/// The row's nonzero features in u-space (variable, value), ascending by variable.
fn features(cells: &[Arc<Cells>], row: usize, out: &mut Vec<(usize, f64)>) {
    out.clear();
    out.push((0, 1.0));
    for block in cells {
        let cells = row * block.leaves..(row + 1) * block.leaves;
        for (&code, &lambda) in block.codes[cells.clone()].iter().zip(&block.lambdas[cells]) {
            if code == NOTHING {
                continue;
            }
            if code & DIRECT != 0 {
                out.push(((code & !DIRECT) as usize, 1.0));
                continue;
            }
            let upper = (code & VARIABLE) as usize;
            // a knot weighing exactly 0 adds nothing: it is left out
            if code & LOWER != 0 && lambda != 1.0 {
                out.push((upper - 1, 1.0 - lambda));
            }
            if lambda != 0.0 {
                out.push((upper, lambda));
            }
        }
    }
    // the variables were numbered leaf by leaf, so the features come in ascending order
    debug_assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
}

impl Objective for Problem {
    fn value_gradient(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let d = theta.len();
        let u = self.to_u(theta);
        let (cells, data, u) = (&self.cells[..], &self.rows, &u);
        let mut weights = self.weights.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        weights.clear();
        weights.resize(data.y.len(), 0.0);
        let parts = parallel::chunks(data.y.len(), &mut weights[..], |rows, weights| {
            let mut f = Vec::new();
            let first = rows.start;
            let sums = solver::blocked_sums(rows, d, |i, loss, g| {
                features(cells, i, &mut f);
                let (y, c) = (data.y[i], data.count[i]);
                let z: f64 = data.offset[i] + f.iter().map(|&(a, v)| u[a] * v).sum::<f64>();
                let (p, q, l) = solver::logistic_terms(z, y);
                *loss += c * l;
                let r = c * if y == 1.0 { -q } else { p };
                weights[i - first] = c * p * q;
                for &(a, va) in &f {
                    g[a] += r * va;
                }
            });
            super::interrupts::check();
            sums
        });
        let mut loss = Compensated::default();
        let mut g = vec![Compensated::default(); d];
        for (part_loss, part_g) in parts {
            loss.merge(&part_loss);
            for a in 0..d {
                g[a].merge(&part_g[a]);
            }
        }
        let n: f64 = self.rows.count.iter().sum();
        let mut g: Vec<f64> = g.iter().map(|c| c.total() / n).collect();
        // back to δ: g_δ = Tᵀ g_u, suffix sums within each curve block
        for &(first, len) in &self.blocks {
            for i in (first..first + len - 1).rev() {
                g[i] += g[i + 1];
            }
        }
        let mut penalty = 0.0;
        for a in 1..d {
            penalty += 0.5 * self.penalty[a] * theta[a] * theta[a];
            g[a] += self.penalty[a] * theta[a];
        }
        (loss.total() / n + penalty, g)
    }

    /// From the rows' weights p·q the last `value_gradient` kept: no exponential again.
    fn hessian(&self, theta: &[f64]) -> Vec<f64> {
        let d = theta.len();
        let weights = self.weights.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (cells, weights) = (&self.cells[..], &weights[..]);
        let parts = parallel::chunks(weights.len(), &mut [(); 0], |rows, _| {
            let mut h = vec![0.0; d * d];
            let mut f = Vec::new();
            for i in rows {
                features(cells, i, &mut f);
                let w = weights[i];
                for (n, &(a, va)) in f.iter().enumerate() {
                    let wa = w * va;
                    let row = &mut h[a * d..(a + 1) * d];
                    for &(b, vb) in &f[n..] {
                        // SAFETY: every feature's variable is below d (`features` numbers them
                        // so); the bounds check of this innermost loop is most of its cost
                        unsafe { *row.get_unchecked_mut(b) += wa * vb };
                    }
                }
            }
            super::interrupts::check();
            h
        });
        // the upper triangle, summed chunk by chunk in order
        let mut h = vec![0.0; d * d];
        for part in parts {
            for a in 0..d {
                for b in a..d {
                    h[a * d + b] += part[a * d + b];
                }
            }
        }
        let n: f64 = self.rows.count.iter().sum();
        for a in 0..d {
            for b in a..d {
                h[a * d + b] /= n;
                h[b * d + a] = h[a * d + b];
            }
        }
        // back to δ: H_δ = Tᵀ H_u T, suffix sums within each curve block
        for &(first, len) in &self.blocks {
            for i in (first..first + len - 1).rev() {
                for b in 0..d {
                    h[i * d + b] += h[(i + 1) * d + b];
                }
            }
            for i in (first..first + len - 1).rev() {
                for a in 0..d {
                    h[a * d + i] += h[a * d + i + 1];
                }
            }
        }
        for a in 1..d {
            h[a * d + a] += self.penalty[a];
        }
        h
    }
}

/// Fits every leaf's shape and weight to the outcomes of `data`.
pub fn fit_shapes(model: &Model, data: &ShapeData, options: &ShapeOptions) -> Result<ShapeFit, Error> {
    fit_in(model, data, options, FitSetup::default())
}

/// How a fit reads its rows, beyond the plain case (the data's columns are the model's leaves).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FitSetup<'a> {
    /// The data's columns that are the model's leaves, in model order.
    pub columns: Option<&'a [usize]>,
    /// Per row a log-odds added to the regression's (a fitted model, when one more leaf is
    /// tried on top of it).
    pub offset: Option<&'a [f64]>,
    /// The rows' order (`data_order` of the whole data), used as it is, rows not merged: one
    /// sort serves every fit over a subset of the columns.
    pub order: Option<&'a [usize]>,
    /// Where the solver starts (a solution of a nearby problem with the same variables).
    pub start: Option<&'a [f64]>,
    /// Where the solver stops, if not at `solver::TOLERANCE` (a fit that only estimates).
    pub tolerance: Option<f64>,
}

/// The order of `data`'s rows by outcome and every column (categories by name): what a fit of
/// any of its columns may use as `FitSetup::order`.
pub(crate) fn data_order(data: &ShapeData) -> Vec<usize> {
    let (_, ranks) = category_ranks(data);
    sorted_order(data, &ranks, None)
}

/// Rows the solver first runs on, one in this many, before the whole data: it finds the
/// active bounds and gets near the optimum on a fraction of the cost; the whole data's
/// solution is the same one (the problem is strictly convex), reached in fewer full passes.
const WARM_START_EVERY: usize = 16;
const WARM_START_FROM: usize = 100_000;

pub(crate) fn fit_in(
    model: &Model,
    data: &ShapeData,
    options: &ShapeOptions,
    setup: FitSetup<'_>,
) -> Result<ShapeFit, Error> {
    let prepared = prepare(model, data, options, setup)?;
    solve(model, data, options, &prepared, setup.start, setup.tolerance.unwrap_or(solver::TOLERANCE))
}

/// A fit's regression, built from its rows and ready to solve.
pub(crate) struct Prepared {
    problem: Problem,
    bounds: Bounds,
    /// The solver's first intercept without a start: the base rate's log-odds, or 0 over an
    /// offset (which holds the base rate).
    intercept: f64,
}

impl Prepared {
    /// This regression with `other`'s leaves after its own, over the same rows in the same
    /// order and without an offset: what `prepare` builds for the model of both, without
    /// reading the rows again. `other`'s variables are numbered after this one's, and its
    /// intercept is this one's.
    pub(crate) fn with_leaves_of(&self, other: &Prepared) -> Prepared {
        let (a, b) = (&self.problem, &other.problem);
        debug_assert_eq!(a.rows.y, b.rows.y);
        let shift = a.penalty.len() - 1;
        let moved = |v: usize| if v == 0 { 0 } else { v + shift };
        let mut bases = a.bases.clone();
        bases.extend(b.bases.iter().map(|basis| match basis {
            Basis::Curve { knots, first, direction } => {
                Basis::Curve { knots: knots.clone(), first: moved(*first), direction: *direction }
            }
            Basis::Map { names, var_of, kept, other, rows } => Basis::Map {
                names: names.clone(),
                var_of: var_of.iter().map(|&v| moved(v)).collect(),
                kept: kept.iter().map(|(n, v)| (n.clone(), moved(*v))).collect(),
                other: other.map(moved),
                rows: rows.clone(),
            },
            Basis::Fixed => Basis::Fixed,
        }));
        let mut imputed = a.imputed.clone();
        imputed.extend(b.imputed.iter().map(|v| v.map(moved)));
        let mut penalty = a.penalty.clone();
        penalty.extend_from_slice(&b.penalty[1..]);
        let mut blocks = a.blocks.clone();
        blocks.extend(b.blocks.iter().map(|&(first, len)| (moved(first), len)));
        let leaves = a.leaves + b.leaves;
        let n = a.rows.y.len();
        // this regression's blocks are shared; the other's leaves get a block of their own,
        // every code but NOTHING naming a variable beside its flags
        let mut cells = a.cells.clone();
        for block in &b.cells {
            let codes = block
                .codes
                .iter()
                .map(|&code| {
                    if code == NOTHING {
                        code
                    } else {
                        moved((code & VARIABLE) as usize) as u32 | (code & (DIRECT | LOWER))
                    }
                })
                .collect();
            cells.push(Arc::new(Cells { leaves: block.leaves, codes, lambdas: block.lambdas.clone() }));
        }
        let rows = Rows { keys: Vec::new(), y: a.rows.y.clone(), count: a.rows.count.clone(), offset: vec![0.0; n] };
        let mut lower = self.bounds.lower.clone();
        lower.extend_from_slice(&other.bounds.lower[1..]);
        let mut upper = self.bounds.upper.clone();
        upper.extend_from_slice(&other.bounds.upper[1..]);
        Prepared {
            problem: Problem { rows, leaves, bases, imputed, penalty, blocks, cells, weights: Mutex::default() },
            bounds: Bounds { lower, upper },
            intercept: self.intercept,
        }
    }
}

/// The regression of a fit: its rows in order, each leaf's basis, its bounds and penalties.
pub(crate) fn prepare(
    model: &Model,
    data: &ShapeData,
    options: &ShapeOptions,
    setup: FitSetup<'_>,
) -> Result<Prepared, Error> {
    let churned = data.y.iter().filter(|&&c| c).count() as u64;
    let retained = data.y.len() as u64 - churned;
    if churned < MIN_CLASS_ROWS || retained < MIN_CLASS_ROWS {
        return Err(Error::InvalidArgument {
            message: format!(
                "fit: {churned} churned and {retained} retained rows; each class needs at least {MIN_CLASS_ROWS}"
            ),
            hint: Some("fit on more accounts".into()),
        });
    }
    let leaf_ids = model.leaves();
    let all: Vec<usize> = (0..leaf_ids.len()).collect();
    let columns = setup.columns.unwrap_or(&all);
    let (sorted_names, ranks) = category_ranks(data);
    let rows = match setup.order {
        Some(order) => rows_in_order(data, &ranks, columns, order, setup.offset, false),
        None => {
            let order = sorted_order(data, &ranks, setup.offset);
            rows_in_order(data, &ranks, columns, &order, setup.offset, true)
        }
    };
    let mut bases = Vec::new();
    let mut imputed = Vec::new();
    let mut penalty = vec![0.0];
    let mut lower = vec![f64::NEG_INFINITY];
    let mut upper = vec![f64::INFINITY];
    let mut blocks = Vec::new();
    let mut add_var = |p: f64, lo: f64, hi: f64| {
        penalty.push(p);
        lower.push(lo);
        upper.push(hi);
        penalty.len() - 1
    };
    for (leaf, &id) in leaf_ids.iter().enumerate() {
        let column = &data.columns[columns[leaf]];
        let basis = match column {
            Column::Numeric(values) => {
                let seen: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
                let knots = quantile_knots(seen, options.knots);
                if knots.len() < 2 {
                    Basis::Fixed
                } else {
                    let name = &model.nodes[id].name;
                    let direction = options
                        .monotone
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, d)| *d)
                        .unwrap_or_else(|| model.base_normalizer(id).map_or(Direction::Free, Direction::of));
                    // health rises with the input: u (the log-odds of churn) may only fall
                    let (lo, hi) = match direction {
                        Direction::Increasing => (f64::NEG_INFINITY, 0.0),
                        Direction::Decreasing => (0.0, f64::INFINITY),
                        Direction::Free => (f64::NEG_INFINITY, f64::INFINITY),
                    };
                    let first = add_var(options.smoothness, lo, hi);
                    for _ in 2..knots.len() {
                        add_var(options.smoothness, lo, hi);
                    }
                    blocks.push((first, knots.len() - 1));
                    Basis::Curve { knots, first, direction }
                }
            }
            Column::Categorical { ids, names, .. } => {
                let mut rows_of = vec![0u64; names.len()];
                for &i in ids.iter().filter(|&&i| i != IMPUTED) {
                    rows_of[i as usize] += 1;
                }
                // rows per category in the canonical order of the sorted names
                let sorted = &sorted_names[columns[leaf]];
                let Column::Categorical { index, .. } = column else { unreachable!("a categorical column") };
                let rows: Vec<u64> = sorted.iter().map(|n| rows_of[index[n] as usize]).collect();
                let mut var_of = Vec::new();
                let mut kept = Vec::new();
                let mut other = None;
                for (n, &count) in sorted.iter().zip(&rows) {
                    if count >= options.min_category_rows {
                        let v = add_var(options.smoothness, f64::NEG_INFINITY, f64::INFINITY);
                        kept.push((n.clone(), v));
                        var_of.push(v);
                    } else {
                        let v =
                            *other.get_or_insert_with(|| add_var(options.smoothness, f64::NEG_INFINITY, f64::INFINITY));
                        var_of.push(v);
                    }
                }
                if kept.is_empty() {
                    Basis::Fixed
                } else {
                    Basis::Map { names: sorted.clone(), var_of, kept, other, rows }
                }
            }
        };
        let any_imputed = match column {
            Column::Numeric(v) => v.iter().any(|x| x.is_nan()),
            Column::Categorical { ids, .. } => ids.contains(&IMPUTED),
        };
        imputed.push(any_imputed.then(|| add_var(options.l2, f64::NEG_INFINITY, f64::INFINITY)));
        bases.push(basis);
    }
    // a Map that turned out Fixed still holds its variables: they get no rows, and the penalty
    // keeps them at 0
    let problem = Problem::new(rows, leaf_ids.len(), bases, imputed, penalty, blocks);
    let bounds = Bounds { lower, upper };
    let rate = churned as f64 / data.y.len() as f64;
    // the offset, where there is one, already holds the base rate
    let intercept = if setup.offset.is_some() { 0.0 } else { (rate / (1.0 - rate)).ln() };
    Ok(Prepared { problem, bounds, intercept })
}

/// Solves a prepared fit of `model`'s leaves (from `start` where given, which must lie within
/// the bounds) into their shapes, to `tolerance`.
pub(crate) fn solve(
    model: &Model,
    data: &ShapeData,
    options: &ShapeOptions,
    prepared: &Prepared,
    start: Option<&[f64]>,
    tolerance: f64,
) -> Result<ShapeFit, Error> {
    let Prepared { problem, bounds, intercept } = prepared;
    let leaf_ids = model.leaves();
    debug_assert_eq!(leaf_ids.len(), problem.leaves);
    let d = problem.penalty.len();
    let start = match start {
        Some(s) if s.len() == d => s.to_vec(),
        _ => {
            let mut start = vec![0.0; d];
            start[0] = *intercept;
            if problem.rows.y.len() >= WARM_START_FROM {
                let some = problem.every(WARM_START_EVERY);
                if let Ok(m) = solver::minimize_polished(&some, start.clone(), bounds, "fit", 0, solver::TOLERANCE) {
                    start = m.theta;
                }
            }
            start
        }
    };
    // no polish past the tolerance: each step is a pass over every row, and the shapes' values
    // are not read to 1e-10 as fit's weights are
    let Minimum { theta, iterations, gradient_norm, .. } =
        solver::minimize_polished(problem, start, bounds, "fit", 0, tolerance)?;
    let u = problem.to_u(&theta);
    let leaves = leaf_ids
        .iter()
        .enumerate()
        .map(|(leaf, &id)| leaf_shape(model, id, &problem.bases[leaf], problem.imputed[leaf], &u, options))
        .collect();
    Ok(ShapeFit {
        intercept: theta[0],
        theta,
        leaves,
        rows: data.y.len() as u64,
        excluded: data.excluded,
        iterations,
        gradient_norm,
    })
}

/// Values in [0, 1] from healths: `(h − lo) / (hi − lo)`, clamped against rounding.
fn unit(h: f64, lo: f64, range: f64) -> f64 {
    if range > 0.0 {
        ((h - lo) / range).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

fn leaf_shape(
    model: &Model,
    id: usize,
    basis: &Basis,
    imputed: Option<usize>,
    u: &[f64],
    options: &ShapeOptions,
) -> LeafShape {
    let imputed_health = imputed.filter(|_| options.refit_impute).map(|v| -u[v]);
    let mut log_odds =
        LeafLogOdds { knots: Vec::new(), categories: Vec::new(), other: None, imputed: imputed.map(|v| u[v]) };
    let range_of = |healths: &[f64]| {
        let mut lo = healths.iter().copied().fold(f64::INFINITY, f64::min);
        let mut hi = healths.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if let Some(h) = imputed_health {
            lo = lo.min(h);
            hi = hi.max(h);
        }
        (lo, hi - lo)
    };
    let finish = |normalizer: Json, lo: f64, range: f64, direction: Option<Direction>, log_odds: LeafLogOdds| {
        let at_bound = range < MIN_WEIGHT;
        LeafShape {
            leaf: id,
            normalizer: Some(normalizer),
            weight: range.max(MIN_WEIGHT),
            direction,
            at_bound,
            impute: imputed_health.map(|h| unit(h, lo, range)),
            log_odds,
        }
    };
    match basis {
        Basis::Curve { knots, first, direction } => {
            let healths: Vec<f64> = std::iter::once(0.0).chain((0..knots.len() - 1).map(|i| -u[first + i])).collect();
            let (lo, range) = range_of(&healths);
            let points = knots
                .iter()
                .zip(&healths)
                .map(|(&t, &h)| Json::Array(vec![Json::Number(t), Json::Number(unit(h, lo, range))]))
                .collect();
            let normalizer = Json::Object(vec![
                ("type".into(), Json::String("curve".into())),
                ("points".into(), Json::Array(points)),
            ]);
            log_odds.knots = knots.iter().zip(&healths).map(|(&t, &h)| (t, -h)).collect();
            finish(normalizer, lo, range, Some(*direction), log_odds)
        }
        Basis::Map { names, var_of, kept, other, rows } => {
            let mut healths: Vec<f64> = kept.iter().map(|(_, v)| -u[*v]).collect();
            if let Some(o) = other {
                healths.push(-u[*o]);
            }
            let (lo, range) = range_of(&healths);
            let values = kept.iter().map(|(n, v)| (n.clone(), Json::Number(unit(-u[*v], lo, range)))).collect();
            // Categories seen too rarely share the default, and so do the hand map's categories
            // the training rows never showed (and, where the hand map had a default, any other):
            // their fitted value when rare ones were seen, else that of the average row.
            let (hand_default, hand_unseen) = match model.base_normalizer(id) {
                Some(Normalizer::Map { values, default }) => {
                    (default.is_some(), values.keys().any(|k| names.binary_search_by(|n| n.as_str().cmp(k)).is_err()))
                }
                _ => (false, false),
            };
            let default = match other {
                Some(o) => Some(unit(-u[*o], lo, range)),
                None if hand_default || hand_unseen => {
                    let total: u64 = rows.iter().sum();
                    let mean = (0..names.len()).map(|i| rows[i] as f64 * -u[var_of[i]]).sum::<f64>() / total as f64;
                    Some(unit(mean, lo, range))
                }
                None => None,
            };
            let mut fields = vec![("type".into(), Json::String("map".into())), ("values".into(), Json::Object(values))];
            if let Some(d) = default {
                fields.push(("default".into(), Json::Number(d)));
            }
            log_odds.categories = kept.iter().map(|(n, v)| (n.clone(), u[*v])).collect();
            log_odds.other = other.map(|o| u[o]);
            finish(Json::Object(fields), lo, range, None, log_odds)
        }
        Basis::Fixed => LeafShape {
            leaf: id,
            normalizer: None,
            weight: MIN_WEIGHT,
            direction: None,
            at_bound: true,
            impute: None,
            log_odds,
        },
    }
}

/// The model with the fitted shapes and weights: each fitted leaf's `normalize` replaced (and
/// its `missing` impute value when refitted), a group weighing the sum of its leaves, the
/// overrides' `weights` and leaf `normalize` dropped, `calibration` dropped.
pub fn apply_shapes(json: &Json, model: &Model, fit: &ShapeFit) -> Json {
    let mut out = shape_design_model(json);
    if let Json::Object(members) = &mut out {
        members.retain(|(k, _)| k != "calibration");
    }
    let weights: Vec<f64> = fit.leaves.iter().map(|l| l.weight).collect();
    tree_weights_json(&mut out, model, &weights);
    for shape in &fit.leaves {
        let name = &model.nodes[shape.leaf].name;
        let Some(component) = find_component(&mut out, name) else { continue };
        let Json::Object(fields) = component else { continue };
        if let Some(normalizer) = &shape.normalizer {
            set_member(fields, "normalize", normalizer.clone());
        }
        if let Some(v) = shape.impute {
            set_member(fields, "missing", Json::Object(vec![("impute".into(), Json::Number(v))]));
        }
    }
    out
}

fn set_member(fields: &mut Vec<(String, Json)>, key: &str, value: Json) {
    match fields.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => fields.push((key.to_string(), value)),
    }
}

/// Each leaf's `normalize` object by the leaf's name, from a model's JSON.
pub fn normalizers_by_name(model: &Json) -> HashMap<String, Json> {
    fn walk(components: Option<&Json>, out: &mut HashMap<String, Json>) {
        let Some(Json::Array(items)) = components else { return };
        for item in items {
            if let (Some(Json::String(name)), Some(normalize)) = (item.get("name"), item.get("normalize")) {
                out.insert(name.clone(), normalize.clone());
            }
            walk(item.get("components"), out);
        }
    }
    let mut out = HashMap::new();
    walk(model.get("components"), &mut out);
    out
}

/// The component object named `name`, anywhere in the model's tree.
fn find_component<'a>(model: &'a mut Json, name: &str) -> Option<&'a mut Json> {
    fn walk<'a>(components: &'a mut Json, name: &str) -> Option<&'a mut Json> {
        let Json::Array(items) = components else { return None };
        for item in items {
            if item.get("name").is_some_and(|n| matches!(n, Json::String(s) if s == name)) {
                return Some(item);
            }
            if let Json::Object(fields) = item {
                if let Some((_, children)) = fields.iter_mut().find(|(k, _)| k == "components") {
                    if let Some(found) = walk(children, name) {
                        return Some(found);
                    }
                }
            }
        }
        None
    }
    let Json::Object(members) = model else { return None };
    let (_, components) = members.iter_mut().find(|(k, _)| k == "components")?;
    walk(components, name)
}
