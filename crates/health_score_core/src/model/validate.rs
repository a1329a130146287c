//! The model as a whole: its top-level keys, the input slots, and the assembly of the
//! compiled model from the parts the other modules check.

use std::collections::HashMap;

use super::program::compile_variant;
use super::{Checker, Draft, InputSlot, MissingRule, Model, OnInvalid, Path};
use crate::error::Fault;
use crate::interrupts::Ticker;
use crate::json::Json;
use crate::normalize::Normalizer;

const TOP_LEVEL_KEYS: &[&str] = &[
    "format",
    "scale",
    "components",
    "missing",
    "on_invalid",
    "min_coverage",
    "bands",
    "segments",
    "band_hysteresis",
    "calibration",
    "description",
];

pub(super) fn check(json: &Json) -> Result<Model, Vec<Fault>> {
    // before anything below recurses over the model
    crate::limits::check(json).map_err(|f| vec![f])?;
    let mut c = Checker { faults: Vec::new(), ticker: Ticker::default() };
    let root = Path::default();
    let Some(members) = c.object(json, &root) else { return Err(c.faults) };
    c.allow_keys(members, TOP_LEVEL_KEYS, &root);
    if let Some(f) = json.get("format") {
        if !matches!(f, Json::Number(v) if *v == 1.0) {
            c.fault(&root.key("format"), format!("must be 1, the only model format so far (found {})", f.to_text()));
        }
    }
    let scale = json.get("scale").map(|s| c.positive(s, &root.key("scale"))).unwrap_or(Some(100.0));
    let missing =
        json.get("missing").map(|m| c.missing_rule(m, &root.key("missing"))).unwrap_or(Some(MissingRule::Reweight));
    let on_invalid =
        json.get("on_invalid").map(|o| c.on_invalid(o, &root.key("on_invalid"))).unwrap_or(Some(OnInvalid::Error));
    let min_coverage = json.get("min_coverage").map(|m| c.unit(m, &root.key("min_coverage"))).unwrap_or(Some(0.0));
    let bands = json.get("bands").and_then(|b| c.bands(b, &root.key("bands")));
    let hysteresis =
        json.get("band_hysteresis").and_then(|h| c.non_negative(h, &root.key("band_hysteresis"))).unwrap_or(0.0);
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

    let mut inputs = InputTable::default();
    for id in 0..draft.nodes.len() {
        if !draft.is_group[id] {
            if let Some(key) = &draft.input_keys[id] {
                draft.nodes[id].slot = Some(inputs.slot_of(key));
            }
        }
    }
    for id in 0..draft.nodes.len() {
        if let (Some(s), Some(n)) = (draft.nodes[id].slot, &draft.normalizers[id]) {
            inputs.mark(s, n);
        }
    }

    let (segments, overrides) = match json.get("segments") {
        Some(seg) => c.segments(seg, &root.key("segments"), &draft, &bands, &mut inputs),
        None => (None, Vec::new()),
    };

    if !c.faults.is_empty() {
        return Err(c.faults);
    }
    let nodes = draft.nodes;
    let base = compile_variant(&nodes, &top, draft.weights, draft.normalizers, bands, hysteresis);
    let overrides = overrides
        .into_iter()
        .map(|o| {
            let margin = o.band_hysteresis.unwrap_or(hysteresis);
            (o.category, compile_variant(&nodes, &top, o.weights, o.normalizers, o.bands, margin))
        })
        .collect();
    Ok(Model {
        scale: scale.unwrap_or(100.0),
        min_coverage: min_coverage.unwrap_or(0.0),
        calibration,
        description,
        nodes,
        top,
        inputs: inputs.slots,
        base,
        segments,
        overrides,
    })
}

/// The distinct input keys the model reads, in model order, found by a map (a model may have
/// 100,000 leaves).
#[derive(Default)]
pub(super) struct InputTable {
    pub(super) slots: Vec<InputSlot>,
    by_key: HashMap<String, usize>,
}

impl InputTable {
    pub(super) fn slot_of(&mut self, key: &str) -> usize {
        let slots = &mut self.slots;
        *self.by_key.entry(key.to_string()).or_insert_with(|| {
            slots.push(InputSlot { key: key.to_string(), numeric: false, categorical: false });
            slots.len() - 1
        })
    }

    /// Notes how a normalizer reads the slot's value.
    pub(super) fn mark(&mut self, slot: usize, normalizer: &Normalizer) {
        if normalizer.is_categorical() {
            self.slots[slot].categorical = true;
        } else {
            self.slots[slot].numeric = true;
        }
    }
}
