//! `fit` and `fit_report` (SQL in `sql/fit.sql`): the per-row design, the `_fit`
//! aggregate that collects designs and solves in its final function, and `_fit_apply`, which
//! maps the solutions onto the model. Plain V1 functions with a hand-written `CREATE
//! AGGREGATE` (pgrx issue #2351).

use std::collections::BTreeMap;

use pgrx::pg_sys;

use crate::core::bytes::Reader;
use crate::core::error::reserve;
use crate::core::fit::{self, Solution};
use crate::core::{Error, Json};

use super::models;
use super::scoring::{evaluate_call, InputKind, ModelKind};
use super::{
    aggregate_state, arg, bytea_aggregate_state, bytea_bytes, bytea_final_state_mut, bytea_state_merge, c_symbol,
    float8_array, partial_state, partial_state_functions, raising, return_null, text_datum, v1_function, JsonbArg,
    TextArg,
};

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!(
    "../../sql/fit.sql",
    name = "fit",
    requires = ["roles", "registry", "scoring", "history", "outcomes"]
);

/// The segment code of the base model, and of every row when segments are pooled.
const BASE: f64 = -1.0;

thread_local! {
    /// The design buffer reused across rows (the call site's fn_extra belongs to `Site`).
    static DESIGN: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `_fit_row(model jsonb, by_segment boolean, input)`: `{segment, x_1 … x_L}` (segment −1 for
/// the base model or when pooled, else the override's index); only `{segment}` when the row
/// is left out (a leaf reweighted away).
unsafe fn fit_row(fcinfo: pg_sys::FunctionCallInfo, input_kind: InputKind) -> Result<pg_sys::Datum, Error> {
    let by_segment = arg(fcinfo, 1).is_some_and(|d| d.value() != 0);
    let mut buf = DESIGN.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let array = evaluate_call(fcinfo, ModelKind::Inline, input_kind, 2, false, true, |_, compiled, _, s, nodes| {
        let segment = match s.segment {
            Some(i) if by_segment => i as f64,
            _ => BASE,
        };
        let counted = compiled.model.design_row(nodes, &mut buf);
        if !counted {
            buf.clear();
        }
        buf.insert(0, segment);
        float8_array(&buf)
    })?;
    DESIGN.with(|b| *b.borrow_mut() = buf);
    Ok(array.unwrap_or_else(|| return_null(fcinfo)))
}

v1_function!(hs_fit_row, pg_finfo_hs_fit_row, |fcinfo| { fit_row(fcinfo, InputKind::Row) });
v1_function!(hs_fit_row_columns, pg_finfo_hs_fit_row_columns, |fcinfo| { fit_row(fcinfo, InputKind::Columns) });

/// The elements of a one-dimensional float8[] without NULLs.
unsafe fn float8_elements<'a>(d: pg_sys::Datum) -> Result<&'a [f64], Error> {
    let array = pg_sys::pg_detoast_datum(d.cast_mut_ptr()) as *const u8;
    let ndim = i32::from_ne_bytes(*(array.add(4) as *const [u8; 4]));
    let dataoffset = i32::from_ne_bytes(*(array.add(8) as *const [u8; 4]));
    if ndim == 0 {
        return Ok(&[]);
    }
    if ndim != 1 || dataoffset != 0 {
        return Err(Error::InvalidArgument {
            message: "_fit: a design must be a float8[] without NULLs".into(),
            hint: None,
        });
    }
    let len = i32::from_ne_bytes(*(array.add(16) as *const [u8; 4])) as usize;
    // ARR_OVERHEAD_NONULLS(1): the header and one dimension, MAXALIGNed
    let data = array.add(24) as *const f64;
    Ok(std::slice::from_raw_parts(data, len))
}

/// One segment's designs.
#[derive(Default, Clone)]
struct Designs {
    x: Vec<f64>,
    y: Vec<bool>,
    excluded: u64,
}

#[derive(Default)]
struct FitState {
    leaves: Option<usize>,
    l2: f64,
    segments: BTreeMap<i64, Designs>,
    outcome_unknown: u64,
    /// Row × leaf values held, over every segment.
    cells: usize,
}

/// Rows times leaves one state holds (8 bytes each; a serialized state must stay under 1 GB).
const MAX_CELLS: usize = 100_000_000;

impl FitState {
    fn add(&mut self, design: &[f64], churned: Option<bool>, l2: f64) -> Result<(), Error> {
        let Some(churned) = churned else {
            self.outcome_unknown += 1;
            return Ok(());
        };
        self.l2 = l2;
        let Some((&segment, x)) = design.split_first() else { return Ok(()) };
        let seg = self.segments.entry(segment as i64).or_default();
        if x.is_empty() {
            seg.excluded += 1;
            return Ok(());
        }
        match self.leaves {
            None => self.leaves = Some(x.len()),
            Some(l) if l != x.len() => {
                return Err(Error::InvalidArgument { message: "_fit: designs of different lengths".into(), hint: None })
            }
            _ => {}
        }
        reserve(&mut seg.x, x.len(), "fit")?;
        reserve(&mut seg.y, 1, "fit")?;
        seg.x.extend_from_slice(x);
        seg.y.push(churned);
        self.cells += x.len();
        if self.cells > MAX_CELLS {
            return Err(too_many_cells());
        }
        Ok(())
    }

    fn combine(&mut self, other: &FitState) -> Result<(), Error> {
        if self.leaves.is_none() {
            self.leaves = other.leaves;
        }
        if other.leaves.is_some() && other.leaves != self.leaves {
            return Err(Error::InvalidArgument { message: "_fit: designs of different lengths".into(), hint: None });
        }
        if other.l2 != 0.0 {
            self.l2 = other.l2;
        }
        self.outcome_unknown += other.outcome_unknown;
        self.cells += other.cells;
        if self.cells > MAX_CELLS {
            return Err(too_many_cells());
        }
        for (k, d) in &other.segments {
            let mine = self.segments.entry(*k).or_default();
            reserve(&mut mine.x, d.x.len(), "fit")?;
            reserve(&mut mine.y, d.y.len(), "fit")?;
            mine.x.extend_from_slice(&d.x);
            mine.y.extend_from_slice(&d.y);
            mine.excluded += d.excluded;
        }
        Ok(())
    }

    fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        let size = 32 + self.segments.values().map(|d| 24 + d.y.len() + 8 * d.x.len()).sum::<usize>();
        reserve(&mut out, size, "fit")?;
        let put = |out: &mut Vec<u8>, v: u64| out.extend_from_slice(&v.to_le_bytes());
        put(&mut out, self.leaves.map_or(u64::MAX, |l| l as u64));
        put(&mut out, self.l2.to_bits());
        put(&mut out, self.outcome_unknown);
        put(&mut out, self.segments.len() as u64);
        for (k, d) in &self.segments {
            put(&mut out, *k as u64);
            put(&mut out, d.excluded);
            put(&mut out, d.y.len() as u64);
            out.extend(d.y.iter().map(|&c| c as u8));
            for v in &d.x {
                put(&mut out, v.to_bits());
            }
        }
        Ok(out)
    }

    fn from_bytes(bytes: &[u8]) -> Option<FitState> {
        let mut r = Reader::new(bytes);
        let leaves = r.u64()?;
        let leaves = (leaves != u64::MAX).then_some(leaves as usize);
        let l2 = f64::from_bits(r.u64()?);
        let outcome_unknown = r.u64()?;
        let count = r.u64()?;
        let mut segments = BTreeMap::new();
        for _ in 0..count {
            let key = r.u64()? as i64;
            let excluded = r.u64()?;
            let rows = r.u64()? as usize;
            let flags = r.take(rows)?;
            let cells = rows.checked_mul(leaves.unwrap_or(0))?;
            // sizes come from the bytes; the memory may still be missing
            let (mut x, mut y) = (Vec::new(), Vec::new());
            y.try_reserve_exact(rows).ok()?;
            x.try_reserve_exact(cells.min(r.rest().len() / 8)).ok()?;
            y.extend(flags.iter().map(|&b| b != 0));
            for _ in 0..cells {
                x.push(f64::from_bits(r.u64()?));
            }
            segments.insert(key, Designs { x, y, excluded });
        }
        let cells = segments.values().map(|d| d.x.len()).sum();
        Some(FitState { leaves, l2, segments, outcome_unknown, cells })
    }
}

fn too_many_cells() -> Error {
    Error::LimitExceeded {
        message: format!("fit: more than {MAX_CELLS} row × leaf values in one fit"),
        hint: "fit on a sample of the accounts (TABLESAMPLE in a view, or a WHERE on the key)".into(),
    }
}

// _fit's state is a `bytea` (`fmgr::expanded`), which Citus aggregates partially on its
// workers; the `internal` functions below serve installs of 0.1.0 and 0.2.0 until they are
// updated.
partial_state!(FitState, crate::core::bytes::StateKind::Fit, "_fit");

/// Adds one row (arguments 1 to 3: design, churned, l2) to `state`: a NULL design (a NULL
/// row) is skipped.
unsafe fn add_row(state: &mut FitState, fcinfo: pg_sys::FunctionCallInfo) -> Result<(), Error> {
    if let Some(design) = arg(fcinfo, 1) {
        let churned = arg(fcinfo, 2).map(|d| d.value() != 0);
        let l2 = arg(fcinfo, 3).map_or(fit::DEFAULT_L2, |d| f64::from_bits(d.value() as u64));
        state.add(float8_elements(design)?, churned, l2)?;
    }
    Ok(())
}

// _fit_step(state bytea, design float8[], churned boolean, l2 float8) → bytea
v1_function!(hs_fit_step, pg_finfo_hs_fit_step, |fcinfo| {
    let (datum, state) = bytea_aggregate_state::<FitState>(fcinfo)?;
    add_row(state, fcinfo)?;
    Ok(datum)
});

// _fit_merge(state bytea, other bytea) → bytea
bytea_state_merge!(FitState, hs_fit_merge, pg_finfo_hs_fit_merge);

// _fit_result(state bytea) → text
v1_function!(hs_fit_result, pg_finfo_hs_fit_result, |fcinfo| {
    Ok(match bytea_final_state_mut::<FitState>(fcinfo)? {
        Some(state) => text_datum(&solutions(&state)),
        None => text_datum(&solutions(&FitState::default())),
    })
});

v1_function!(hs_fit_trans, pg_finfo_hs_fit_trans, |fcinfo| {
    let state = aggregate_state::<FitState>(fcinfo, "_fit")?;
    add_row(&mut *state, fcinfo)?;
    Ok(pg_sys::Datum::from(state))
});

partial_state_functions!(
    FitState,
    crate::core::bytes::StateKind::Fit,
    "_fit",
    combine: fit_combine => fit_combine_wrapper as hs_fit_combine, pg_finfo_hs_fit_combine,
    serialize: fit_serialize => fit_serialize_wrapper as hs_fit_serialize, pg_finfo_hs_fit_serialize,
    deserialize: fit_deserialize => fit_deserialize_wrapper as hs_fit_deserialize, pg_finfo_hs_fit_deserialize
);

#[pgrx::pg_extern(sql = false)]
fn fit_final(state: pgrx::Internal) -> String {
    let empty = FitState::default();
    solutions(unsafe { state.get::<FitState>() }.unwrap_or(&empty))
}
c_symbol!(hs_fit_final, pg_finfo_hs_fit_final => fit_final_wrapper);

// The solutions as JSON text: {"leaves", "outcome_unknown", "segments": [{"segment", "rows",
// "churned", "excluded", and "error" or "intercept", "beta", "at_bound", "iterations",
// "gradient_norm"}]}; _fit_apply reads it.
fn solutions(state: &FitState) -> String {
    let leaves = state.leaves.unwrap_or(0);
    let segments: Vec<serde_json::Value> = state
        .segments
        .iter()
        .map(|(&segment, d)| {
            let churned = d.y.iter().filter(|&&c| c).count();
            let mut out = serde_json::json!({
                "segment": segment, "rows": d.y.len(), "churned": churned, "excluded": d.excluded,
            });
            match fit::fit(leaves, &d.x, &d.y, state.l2) {
                Ok(Solution { intercept, beta, at_bound, iterations, gradient_norm, .. }) => {
                    out["intercept"] = intercept.into();
                    out["beta"] = beta.into();
                    out["at_bound"] = at_bound.into();
                    out["iterations"] = iterations.into();
                    out["gradient_norm"] = gradient_norm.into();
                }
                Err(e) => {
                    out["error"] = e.message().into();
                    // a limit stays one (54000) when _fit_apply raises it
                    out["limit"] = matches!(e, Error::LimitExceeded { .. }).into();
                }
            }
            out
        })
        .collect();
    let result = serde_json::json!({"leaves": leaves, "outcome_unknown": state.outcome_unknown, "segments": segments});
    result.to_string()
}

// _fit_design_model(model jsonb, by_segment boolean) → text: the model the designs are read
// with (override weights dropped unless by_segment).
#[pgrx::pg_extern(sql = false)]
fn fit_design_model(model: Option<JsonbArg>, by_segment: Option<bool>) -> Option<String> {
    let json = unsafe { model?.read() }.to_json();
    Some(fit::design_model(&json, by_segment.unwrap_or(false)).to_text())
}
c_symbol!(hs_fit_design_model, pg_finfo_hs_fit_design_model => fit_design_model_wrapper);

// _fit_apply(model jsonb, by_segment boolean, solutions text) → text: {"model": the fitted
// model, "segments": per fitted segment its counts, intercept and per component the old and
// new weight}. Raises a segment's error (22023) with its name.
#[pgrx::pg_extern(sql = false)]
fn fit_apply(model: Option<JsonbArg>, by_segment: Option<bool>, solutions: Option<TextArg>) -> Option<String> {
    let (model, solutions) = (unsafe { model?.read() }, solutions?.0);
    raising(|| {
        let compiled = models::compile(&model)?;
        let solutions: serde_json::Value = serde_json::from_str(&solutions)
            .map_err(|e| Error::InvalidArgument { message: format!("_fit_apply: bad solutions: {e}"), hint: None })?;
        Ok(Some(apply(&model.to_json(), &compiled.model, by_segment.unwrap_or(false), &solutions)?.to_string()))
    })
}
c_symbol!(hs_fit_apply, pg_finfo_hs_fit_apply => fit_apply_wrapper);

// _held_out(entity_key text, fraction double precision) → boolean, STRICT: the key's bytes as
// stored (the database's encoding), as md5() reads them.
v1_function!(hs_held_out, pg_finfo_hs_held_out, |fcinfo| {
    let (Some(key), Some(fraction)) = (arg(fcinfo, 0), arg(fcinfo, 1)) else { return Ok(return_null(fcinfo)) };
    let held = fit::held_out(bytea_bytes(key), f64::from_bits(fraction.value() as u64));
    Ok(pg_sys::Datum::from(held))
});

fn apply(
    json: &Json,
    model: &crate::core::Model,
    by_segment: bool,
    solutions: &serde_json::Value,
) -> Result<serde_json::Value, Error> {
    let segment_name = |code: i64| usize::try_from(code).ok().and_then(|i| model.overrides.get(i)).map(|o| o.0.clone());
    let label = |code: i64| segment_name(code).map_or("the base model".to_string(), |n| format!("segment \"{n}\""));
    let empty = Vec::new();
    let fitted = solutions["segments"].as_array().unwrap_or(&empty);
    let used: u64 = fitted.iter().map(|s| s["rows"].as_u64().unwrap_or(0)).sum();
    if used == 0 {
        return Err(Error::InvalidArgument {
            message: "fit: the design has no rows (no account with a known outcome whose leaves all count)".into(),
            hint: Some("rows where a leaf is left out by \"reweight\" cannot be fitted; give such components \"missing\": \"zero\" or an impute".into()),
        });
    }
    let mut codes: Vec<i64> = vec![-1];
    if by_segment {
        codes.extend(0..model.overrides.len() as i64);
    }
    let mut fits = Vec::new();
    let mut report = Vec::new();
    let leaves = model.leaves();
    // weights alone leave every normalizer as it was: the base model's, or the override's
    let base_normalizers = crate::core::shapes::normalizers_by_name(json);
    let normalizer_of = |segment: Option<usize>, name: &str| {
        let overridden = segment.and_then(|s| {
            json.get("segments")?.get("overrides")?.get(&model.overrides[s].0)?.get("normalize")?.get(name).cloned()
        });
        overridden
            .or_else(|| base_normalizers.get(name).cloned())
            .map(|n| serde_json::from_str::<serde_json::Value>(&n.to_text()).unwrap_or_default())
    };
    for code in codes {
        let Some(s) = fitted.iter().find(|s| s["segment"].as_i64() == Some(code) && s["rows"].as_u64() > Some(0))
        else {
            return Err(Error::InvalidArgument {
                message: format!("fit: {} has no rows to fit", label(code)),
                hint: Some(
                    if by_segment {
                        "fit without by_segment, or drop the override"
                    } else {
                        "fit on accounts whose leaves all count"
                    }
                    .into(),
                ),
            });
        };
        if let Some(e) = s["error"].as_str() {
            if s["limit"].as_bool() == Some(true) {
                return Err(Error::LimitExceeded {
                    message: format!("{e} ({})", label(code)),
                    hint: "fit a model with fewer components".into(),
                });
            }
            return Err(Error::InvalidArgument {
                message: format!("{e} ({})", label(code)),
                hint: Some("each class (churned, retained) needs at least 10 accounts with every leaf counted".into()),
            });
        }
        let beta: Vec<f64> = s["beta"].as_array().unwrap_or(&empty).iter().map(|b| b.as_f64().unwrap_or(0.0)).collect();
        let at_bound: Vec<bool> =
            s["at_bound"].as_array().unwrap_or(&empty).iter().map(|b| b.as_bool().unwrap_or(false)).collect();
        let weights: Vec<f64> = beta.iter().map(|b| -b).collect();
        let segment = (code >= 0).then_some(code as usize);
        let old = &model.variant(segment).weights;
        let new_tree = model.tree_weights(&weights);
        let components: Vec<serde_json::Value> = model
            .nodes
            .iter()
            .enumerate()
            .map(|(id, node)| {
                let bound = leaves.iter().position(|&l| l == id).map(|i| at_bound[i]);
                let normalizer = normalizer_of(segment, &node.name);
                serde_json::json!({
                    "component": node.name, "parent": node.parent.map(|p| model.nodes[p].name.clone()),
                    "old_weight": old[id], "new_weight": new_tree[id], "at_bound": bound,
                    "old_normalizer": normalizer, "new_normalizer": normalizer,
                })
            })
            .collect();
        report.push(serde_json::json!({
            "segment": segment_name(code), "rows": s["rows"], "churned": s["churned"], "excluded": s["excluded"],
            "intercept": s["intercept"], "iterations": s["iterations"], "gradient_norm": s["gradient_norm"],
            "components": components,
        }));
        fits.push((segment, weights));
    }
    let excluded: u64 = fitted.iter().map(|s| s["excluded"].as_u64().unwrap_or(0)).sum();
    let fitted_model = fit::apply(json, model, &fits, by_segment);
    let model_value: serde_json::Value = serde_json::from_str(&fitted_model.to_text())
        .map_err(|e| Error::InvalidArgument { message: format!("_fit_apply: {e}"), hint: None })?;
    Ok(serde_json::json!({
        "model": model_value, "segments": report, "rows_used": used, "rows_excluded": excluded,
        "outcome_unknown": solutions["outcome_unknown"],
    }))
}
