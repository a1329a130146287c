//! Suggested components: which of a source's other columns would most improve a model, each
//! as a component with a fitted normalizer, ranked by the holdout AUC it gains; and
//! `add_components`, which adds components to a model.
//!
//! The model's shapes are fitted once on the training rows; each candidate column is then
//! fitted alone on top of that fit's log-odds (an offset), on every `RANKING_SAMPLE`th
//! training row in the rows' canonical order (of large data), which ranks every candidate for
//! the cost of a small one-leaf fit. The best `exact` candidates are fitted again together with the
//! model's leaves (weights and shapes), and their holdout AUC is that of the fitted model
//! scored as the scoring functions score it. A candidate whose fitted term alone separates
//! the training rows (almost) perfectly leaks the outcome: it is flagged and ranked last.

use super::auc::AucState;
use super::error::Error;
use super::json::Json;
use super::model::Model;
use super::parallel;
use super::score::Scratch;
use super::shapes::{self, Direction, Observation, ShapeData, ShapeFit, ShapeOptions};
use super::solver::TOLERANCE;
use super::value::Value;

/// Candidates fitted jointly with the model when the options name no number.
pub const DEFAULT_EXACT: usize = 10;
/// A text column with more distinct values than this is not a candidate, by default.
pub const DEFAULT_MAX_CATEGORIES: usize = 20;
/// Where the fit that ranks a candidate on top of the model stops: the ranking is an estimate
/// (the best candidates are fitted again, jointly, to `solver::TOLERANCE`), and a gradient
/// this small leaves the term's log-odds within about 1e-4 of the optimum's, one pass over
/// the rows sooner.
const RANKING_TOLERANCE: f64 = 1e-5;
/// The ranking fits read one training row in this many (the knots and categories are still
/// those of every row, so that a ranking fit's solution starts the joint fit), from this many
/// training rows on: below, a quarter would rank on too few rows, and all are cheap.
const RANKING_SAMPLE: usize = 4;
const RANKING_SAMPLE_FROM: usize = 100_000;
/// The AUC of a candidate's term alone, over the training rows it was ranked on, from which it
/// is taken for a leak.
pub const LEAK_AUC: f64 = 0.999;

/// A column of the source that might become a component.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub column: String,
    pub categorical: bool,
}

/// The rows a suggestion reads: the model's leaves and every candidate, split into the
/// training rows and the held-out ones.
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestData {
    pub train: ShapeData,
    pub holdout: ShapeData,
}

impl SuggestData {
    /// Empty, for `model`'s leaves and the candidates (numeric ones first, as `add` takes them).
    pub fn new(model: &Model, numeric: usize, categorical: usize) -> SuggestData {
        SuggestData {
            train: ShapeData::new(model).with_extra(numeric, categorical),
            holdout: ShapeData::new(model).with_extra(numeric, categorical),
        }
    }

    /// Adds a row: the model's encoded observations, then each candidate's value (None for
    /// NULL, a non-finite number or a category past `max_categories` distinct ones).
    pub fn add(
        &mut self,
        leaves: &[u8],
        numbers: &[Option<f64>],
        categories: &[Option<&str>],
        churned: bool,
        held: bool,
        max_categories: usize,
    ) -> Result<(), Error> {
        let data = if held { &mut self.holdout } else { &mut self.train };
        let first_category = data.columns.len() - categories.len();
        let mut extra: Vec<Observation<'_>> = numbers
            .iter()
            .map(|v| match v {
                Some(x) if x.is_finite() => Observation::Number(*x),
                _ => Observation::Imputed,
            })
            .collect();
        for (i, c) in categories.iter().enumerate() {
            // past the limit a column only counts distinct values no more: it is dropped later
            let full = data.categories(first_category + i) > max_categories;
            extra.push(match c {
                Some(text) if !full => Observation::Category((*text).into()),
                _ => Observation::Imputed,
            });
        }
        data.add_parts(leaves, &extra, churned)
    }

    pub fn append(&mut self, other: &SuggestData) -> Result<(), Error> {
        self.train.append(&other.train)?;
        self.holdout.append(&other.holdout)
    }

    pub fn to_bytes(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let mut train = Vec::new();
        self.train.to_bytes(&mut train)?;
        out.extend_from_slice(&(train.len() as u64).to_le_bytes());
        out.extend_from_slice(&train);
        self.holdout.to_bytes(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<SuggestData> {
        let mut r = super::bytes::Reader::new(bytes);
        let n = r.u64()? as usize;
        let train = ShapeData::from_bytes(r.take(n)?)?;
        let holdout = ShapeData::from_bytes(r.rest())?;
        Some(SuggestData { train, holdout })
    }
}

/// One suggested component.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub rank: usize,
    pub column: String,
    pub component: Json,
    pub holdout_auc: f64,
    /// `holdout_auc` less the model's own (with its shapes fitted) on the same rows.
    pub gain: f64,
    pub leak: bool,
    /// Whether `holdout_auc` comes from the joint fit (else from the fit on top).
    pub exact: bool,
}

/// What `suggest` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestions {
    /// The holdout AUC of the model with its own shapes fitted.
    pub baseline_holdout_auc: f64,
    pub suggestions: Vec<Suggestion>,
    /// Text columns left out for having more distinct values than the limit.
    pub too_many_categories: Vec<String>,
}

/// A component name from a column name: lower case, `_` for any other character, a leading
/// `c_` where it does not start with a letter, at most 63 characters.
pub fn component_name(column: &str) -> String {
    let mut name: String =
        column.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name = format!("c_{name}");
    }
    name.chars().take(63).collect()
}

/// `name`, or `name_2`, `name_3`, … : the first that `taken` does not hold (cut to 63
/// characters with its suffix).
fn unique_name(name: &str, taken: &dyn Fn(&str) -> bool) -> String {
    if !taken(name) {
        return name.to_string();
    }
    (2..)
        .map(|n| {
            let suffix = format!("_{n}");
            let head: String = name.chars().take(63 - suffix.len()).collect();
            head + &suffix
        })
        .find(|candidate| !taken(candidate))
        .expect("some suffix is free")
}

fn every_name(components: &Json, out: &mut Vec<String>) {
    let Json::Array(items) = components else { return };
    for item in items {
        if let Some(Json::String(name)) = item.get("name") {
            out.push(name.clone());
        }
        if let Some(children) = item.get("components") {
            every_name(children, out);
        }
    }
}

fn bad(message: String, hint: &str) -> Error {
    Error::InvalidArgument { message, hint: Some(hint.into()) }
}

/// The model with `components` (a JSON array of component objects) added at its top level,
/// or under the group named `parent`; weights as given, and a name already in the model
/// renamed `<name>_2`, `<name>_3`, …. The result must be a valid model.
pub fn add_components(model: &Json, components: &Json, parent: Option<&str>) -> Result<Json, Error> {
    Model::parse(model)?;
    let Json::Array(new) = components else {
        return Err(bad(
            format!("add_components: components must be a JSON array of components, not {}", components.kind()),
            "for example '[{\"name\": \"seats\", \"weight\": 1, \"normalize\": {\"type\": \"linear\", \"min\": 0, \"max\": 50}}]'",
        ));
    };
    let mut names = Vec::new();
    every_name(model.get("components").unwrap_or(&Json::Null), &mut names);
    let mut added = Vec::new();
    for (i, component) in new.iter().enumerate() {
        let Json::Object(fields) = component else {
            return Err(bad(
                format!("add_components: components[{i}] must be an object, not {}", component.kind()),
                "each element is a component: name, weight, and normalize or components",
            ));
        };
        let mut fields = fields.clone();
        let mut inner = Vec::new();
        every_name(fields.iter().find(|(k, _)| k == "components").map_or(&Json::Null, |(_, v)| v), &mut inner);
        if let Some((_, Json::String(name))) = fields.iter_mut().find(|(k, _)| k == "name") {
            *name = unique_name(name, &|n| names.iter().any(|m| m == n));
            names.push(name.clone());
        }
        // names inside an added group are kept (a clash is the model check's to report), and
        // taken for the components added after it
        names.extend(inner);
        added.push(Json::Object(fields));
    }
    let mut out = model.clone();
    let target = match parent {
        None => top_components(&mut out),
        Some(p) => group_components(&mut out, p).ok_or_else(|| {
            bad(
                format!("add_components: the model has no group named \"{}\"", p.chars().take(200).collect::<String>()),
                "name a group of the model (a component with components), or pass NULL for the top level",
            )
        })?,
    };
    target.extend(added);
    Model::parse(&out).map_err(|e| match e {
        Error::InvalidModel(faults) => Error::InvalidArgument {
            message: format!(
                "add_components: the model with the components added is not valid: {}",
                faults.first().map(|f| f.to_string()).unwrap_or_default()
            ),
            hint: Some("the path names the component; each needs a unique name, a weight > 0 and a normalizer".into()),
        },
        other => other,
    })?;
    Ok(out)
}

fn top_components(model: &mut Json) -> &mut Vec<Json> {
    let Json::Object(members) = model else { unreachable!("a parsed model is an object") };
    match members.iter().position(|(k, _)| k == "components") {
        Some(i) => match &mut members[i].1 {
            Json::Array(items) => items,
            _ => unreachable!("a parsed model's components are an array"),
        },
        None => unreachable!("a parsed model has components"),
    }
}

fn group_components<'a>(model: &'a mut Json, name: &str) -> Option<&'a mut Vec<Json>> {
    fn walk<'a>(items: &'a mut [Json], name: &str) -> Option<&'a mut Vec<Json>> {
        for item in items.iter_mut() {
            let Json::Object(fields) = item else { continue };
            let is_it = fields.iter().any(|(k, v)| k == "name" && matches!(v, Json::String(s) if s == name));
            let Some(i) = fields.iter().position(|(k, _)| k == "components") else { continue };
            let Json::Array(children) = &mut fields[i].1 else { continue };
            if is_it {
                return Some(children);
            }
            if let Some(found) = walk(children, name) {
                return Some(found);
            }
        }
        None
    }
    walk(top_components(model), name)
}

/// The options of `suggest`: those of a fit of shapes, and its own.
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestOptions {
    pub shapes: ShapeOptions,
    pub exact: usize,
    pub max_categories: usize,
}

impl SuggestOptions {
    pub fn from_json(options: &Json, model: &Model) -> Result<SuggestOptions, Error> {
        let mut out = SuggestOptions {
            shapes: ShapeOptions::from_json(options, model)?,
            exact: DEFAULT_EXACT,
            max_categories: DEFAULT_MAX_CATEGORIES,
        };
        let whole = |key: &str, lo: f64, hi: f64| -> Result<Option<usize>, Error> {
            match options.get(key) {
                None => Ok(None),
                Some(Json::Number(n)) if n.fract() == 0.0 && (lo..=hi).contains(n) => Ok(Some(*n as usize)),
                Some(other) => Err(Error::InvalidArgument {
                    message: format!(
                        "suggest: options.{key}: must be a whole number from {lo} to {hi}, not {}",
                        other.to_text()
                    ),
                    hint: None,
                }),
            }
        };
        if let Some(n) = whole("exact", 0.0, 1000.0)? {
            out.exact = n;
        }
        if let Some(n) = whole("max_categories", 1.0, 10000.0)? {
            out.max_categories = n;
        }
        Ok(out)
    }
}

/// The AUC of `score` (low = churn risk) over rows with outcomes `churned`; 0.5 when a class
/// is empty.
fn auc_of(scores: impl ExactSizeIterator<Item = (f64, bool)>) -> f64 {
    let mut state = AucState { churned: Vec::new(), retained: Vec::with_capacity(scores.len()) };
    for (s, c) in scores {
        // scores are finite: log-odds and scores of a valid model
        let _ = state.add(s, c);
    }
    state.finish().unwrap_or(0.5)
}

/// A leaf placeholder for a candidate: any number, or any category, is valid; a missing value
/// is imputed (the fit gives it its own term).
fn placeholder(name: &str, column: &str, categorical: bool, first_category: Option<&str>) -> Json {
    let normalize = if categorical {
        Json::Object(vec![
            ("type".into(), Json::String("map".into())),
            ("values".into(), Json::Object(vec![(first_category.unwrap_or("").to_string(), Json::Number(0.5))])),
            ("default".into(), Json::Number(0.5)),
        ])
    } else {
        Json::Object(vec![
            ("type".into(), Json::String("linear".into())),
            ("min".into(), Json::Number(0.0)),
            ("max".into(), Json::Number(1.0)),
        ])
    };
    Json::Object(vec![
        ("name".into(), Json::String(name.into())),
        ("input".into(), Json::String(column.into())),
        ("weight".into(), Json::Number(1.0)),
        ("missing".into(), Json::Object(vec![("impute".into(), Json::Number(0.5))])),
        ("normalize".into(), normalize),
    ])
}

/// The holdout AUC of a fitted model over `rows` (its leaves' columns in model order), each
/// scored as the scoring functions score it: a number or category as the input, an imputed
/// observation as a missing input.
fn holdout_auc(model: &Model, data: &ShapeData, columns: &[usize]) -> f64 {
    let leaves = model.leaves();
    let slots: Vec<usize> = leaves.iter().map(|&leaf| model.nodes[leaf].slot.expect("a leaf reads an input")).collect();
    let mut values = vec![Value::Missing; model.inputs.len()];
    let mut scratch = Scratch::default();
    let mut state = AucState { churned: Vec::with_capacity(data.churned()), retained: Vec::with_capacity(data.rows()) };
    for row in 0..data.rows() {
        values.fill(Value::Missing);
        for (&slot, &c) in slots.iter().zip(columns) {
            match data.observation(row, c) {
                Observation::Number(x) => values[slot] = Value::number_from(x),
                Observation::Category(text) => values[slot] = Value::Text(text),
                Observation::Imputed => {}
            }
        }
        if let Ok(Some(score)) = model.evaluate_into::<false>(&values, &mut scratch).map(|s| s.score) {
            let _ = state.add(score, data.churned_at(row));
        }
    }
    state.finish().unwrap_or(0.5)
}

/// Per row of `data`, the log-odds `fit` gives it, its leaves read from `columns`.
fn log_odds(fit: &ShapeFit, data: &ShapeData, columns: &[usize]) -> Vec<f64> {
    let mut observations = Vec::with_capacity(columns.len());
    (0..data.rows())
        .map(|row| {
            observations.clear();
            observations.extend(columns.iter().map(|&c| data.observation(row, c)));
            fit.log_odds(&observations)
        })
        .collect()
}

/// A candidate fitted on top of the model's log-odds, waiting for its rank.
struct Tried {
    index: usize,
    name: String,
    /// Its leaf before fitting, for the joint fit, and the model of that leaf alone.
    placeholder: Json,
    one_model: Model,
    leak: bool,
    approx: f64,
    component: Json,
    /// The shape options with the candidate's own direction (none).
    options: ShapeOptions,
    /// The joint fit's start: the model's solution with the candidate's term beside it.
    start: Vec<f64>,
}

/// Ranks the candidates (after the model's leaves in `data`, numeric ones first) by the
/// holdout AUC each gains when added to `model_json` and fitted with it.
pub fn suggest(
    model_json: &Json,
    model: &Model,
    candidates: &[Candidate],
    data: &SuggestData,
    options: &SuggestOptions,
) -> Result<Suggestions, Error> {
    if data.holdout.rows() == 0 {
        return Err(bad(
            "suggest: no held-out rows to measure the AUC on".into(),
            "a larger options.holdout, or more accounts with a known outcome",
        ));
    }
    let leaves = model.leaves().len();
    let leaf_columns: Vec<usize> = (0..leaves).collect();
    // one order of the training rows serves every fit below
    let order = shapes::data_order(&data.train);
    fn on<'a>(columns: &'a [usize], order: &'a [usize]) -> shapes::FitSetup<'a> {
        shapes::FitSetup { columns: Some(columns), order: Some(order), ..Default::default() }
    }
    // the model's regression, kept for the joint fits, which add one leaf to it
    let prepared = shapes::prepare(model, &data.train, &options.shapes, on(&leaf_columns, &order))?;
    let base = shapes::solve(model, &data.train, &options.shapes, &prepared, None, TOLERANCE)?;
    let base_json = shapes::apply_shapes(model_json, model, &base);
    let base_model = Model::parse(&base_json)?;
    let baseline = holdout_auc(&base_model, &data.holdout, &leaf_columns);
    let train_offset = log_odds(&base, &data.train, &leaf_columns);
    let holdout_offset = log_odds(&base, &data.holdout, &leaf_columns);
    // a candidate's weight on the scale of the model's own top level: its fitted log-odds range
    // times the hand model's top-level weight per unit of the fitted one
    let hand_top: f64 = model.top.iter().map(|&c| model.base.weights[c]).sum();
    let fitted_top: f64 = base.leaves.iter().map(|l| l.weight).sum();
    let scale = hand_top / fitted_top;

    let every = if data.train.rows() >= RANKING_SAMPLE_FROM { RANKING_SAMPLE } else { 1 };
    let sample: Vec<usize> = order.iter().step_by(every).copied().collect();
    let mut taken: Vec<String> = model.nodes.iter().map(|n| n.name.clone()).collect();
    let mut too_many = Vec::new();
    let mut named = Vec::new();
    for (i, candidate) in candidates.iter().enumerate() {
        // a column without a value in any training row has nothing to fit
        if !data.train.observed(leaves + i) {
            continue;
        }
        if candidate.categorical && data.train.categories(leaves + i) > options.max_categories {
            too_many.push(candidate.column.clone());
            continue;
        }
        let name = unique_name(&component_name(&candidate.column), &|n| taken.iter().any(|m| m == n));
        taken.push(name.clone());
        named.push((i, name));
    }
    // each candidate on top of the model, on threads of their own
    let tried = parallel::map(&named, |(i, name)| -> Result<Option<Tried>, Error> {
        let (i, candidate) = (*i, &candidates[*i]);
        let column = leaves + i;
        let leaf = placeholder(name, &candidate.column, candidate.categorical, data.train.first_category(column));
        let one = Json::Object(vec![("components".into(), Json::Array(vec![leaf.clone()]))]);
        let one_model = Model::parse(&one)?;
        let mut one_options = options.shapes.clone();
        one_options.monotone.push((name.clone(), Direction::Free));
        let own = [column];
        let setup =
            shapes::FitSetup { offset: Some(&train_offset), tolerance: Some(RANKING_TOLERANCE), ..on(&own, &sample) };
        let Ok(term) = shapes::fit_in(&one_model, &data.train, &one_options, setup) else {
            return Ok(None);
        };
        // on the rows it was fitted on
        let on_train = auc_of(
            sample
                .iter()
                .map(|&r| (-term.leaves[0].log_odds_of(&data.train.observation(r, column)), data.train.churned_at(r))),
        );
        let leak = on_train >= LEAK_AUC;
        let approx = auc_of((0..data.holdout.rows()).map(|r| {
            let t = term.leaves[0].log_odds_of(&data.holdout.observation(r, column));
            (-(holdout_offset[r] + t), data.holdout.churned_at(r))
        }));
        let component = component_of(
            &shapes::apply_shapes(&one, &one_model, &term),
            name,
            &candidate.column,
            term.leaves[0].weight * scale,
            &term.leaves[0],
        );
        let mut start = base.theta.clone();
        start[0] += term.theta[0];
        start.extend_from_slice(&term.theta[1..]);
        Ok(Some(Tried {
            index: i,
            name: name.clone(),
            placeholder: leaf,
            one_model,
            leak,
            approx,
            component,
            options: one_options,
            start,
        }))
    });
    let mut tried: Vec<Tried> = tried.into_iter().filter_map(Result::transpose).collect::<Result<_, _>>()?;
    // the best candidates that do not leak, fitted with the model's leaves
    tried.sort_by(|a, b| {
        a.leak
            .cmp(&b.leak)
            .then(b.approx.total_cmp(&a.approx))
            .then_with(|| candidates[a.index].column.cmp(&candidates[b.index].column))
    });
    // the joint fits of the best, on threads of their own
    let joint = |(n, t): (usize, &Tried)| -> Result<Option<(Json, f64)>, Error> {
        if t.leak || n >= options.exact {
            return Ok(None);
        }
        let input = &candidates[t.index].column;
        let joint_json = add_components(model_json, &Json::Array(vec![t.placeholder.clone()]), None)?;
        let joint = Model::parse(&joint_json)?;
        let own = [leaves + t.index];
        let fitted = shapes::prepare(&t.one_model, &data.train, &t.options, on(&own, &order)).and_then(|one| {
            shapes::solve(&joint, &data.train, &t.options, &prepared.with_leaves_of(&one), Some(&t.start), TOLERANCE)
        });
        let Ok(fit) = fitted else { return Ok(None) };
        let mut columns = leaf_columns.clone();
        columns.push(leaves + t.index);
        let fitted_json = shapes::apply_shapes(&joint_json, &joint, &fit);
        let fitted = Model::parse(&fitted_json)?;
        let own = fit.leaves.last().expect("the candidate's leaf");
        let joint_top: f64 = fit.leaves[..leaves].iter().map(|l| l.weight).sum();
        let component = component_of(&fitted_json, &t.name, input, own.weight * hand_top / joint_top, own);
        Ok(Some((component, holdout_auc(&fitted, &data.holdout, &columns))))
    };
    let ranked: Vec<(usize, &Tried)> = tried.iter().enumerate().collect();
    let exact = parallel::map(&ranked[..options.exact.min(ranked.len())], |&item| joint(item));
    let mut exact = exact.into_iter();
    let mut suggestions = Vec::new();
    for t in tried {
        let mut s = Suggestion {
            rank: 0,
            column: candidates[t.index].column.clone(),
            component: t.component,
            holdout_auc: t.approx,
            gain: t.approx - baseline,
            leak: t.leak,
            exact: false,
        };
        if let Some((component, auc)) = exact.next().transpose()?.flatten() {
            s.component = component;
            s.holdout_auc = auc;
            s.gain = auc - baseline;
            s.exact = true;
        }
        suggestions.push(s);
    }
    suggestions.sort_by(|a, b| {
        a.leak
            .cmp(&b.leak)
            .then(b.exact.cmp(&a.exact))
            .then(b.holdout_auc.total_cmp(&a.holdout_auc))
            .then_with(|| a.column.cmp(&b.column))
    });
    for (n, s) in suggestions.iter_mut().enumerate() {
        s.rank = n + 1;
    }
    Ok(Suggestions { baseline_holdout_auc: baseline, suggestions, too_many_categories: too_many })
}

/// The suggested component: the fitted leaf `name` of `fitted`, reading `input`, with
/// `weight`, and the impute value of its fitted term for a missing value (when some row had
/// none).
fn component_of(fitted: &Json, name: &str, input: &str, weight: f64, shape: &shapes::LeafShape) -> Json {
    let normalize = shapes::normalizers_by_name(fitted).remove(name).unwrap_or(Json::Null);
    let mut fields = vec![
        ("name".to_string(), Json::String(name.into())),
        ("input".to_string(), Json::String(input.into())),
        ("weight".to_string(), Json::Number(weight)),
    ];
    if let Some(v) = shape.imputed_value() {
        fields.push(("missing".into(), Json::Object(vec![("impute".into(), Json::Number(v))])));
    }
    fields.push(("normalize".into(), normalize));
    Json::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::is_valid_name;

    #[test]
    fn component_names_follow_the_rule() {
        for (column, name) in [("MonthlyCharges", "monthlycharges"), ("2nd plan", "c_2nd_plan"), ("tenure", "tenure")] {
            assert_eq!(component_name(column), name);
            assert!(is_valid_name(&component_name(column)));
        }
        assert_eq!(component_name(&"x".repeat(80)).len(), 63);
        assert_eq!(unique_name("a", &|n| n == "a" || n == "a_2"), "a_3");
    }
}
