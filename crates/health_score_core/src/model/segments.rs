//! Segments: per-category overrides of weights, normalizers and bands, keyed by one input.

use super::checker::fmt_num;
use super::validate::InputTable;
use super::{Band, Checker, Draft, Path, Segments};
use crate::json::Json;
use crate::normalize::{Categories, Normalizer};

/// One category's override as read, before its variant is compiled.
pub(super) struct Override {
    pub(super) category: String,
    pub(super) weights: Vec<f64>,
    pub(super) normalizers: Vec<Option<Normalizer>>,
    pub(super) bands: Option<Vec<Band>>,
    /// Its own band hysteresis margin; None keeps the model's.
    pub(super) band_hysteresis: Option<f64>,
}

impl Checker {
    /// The `segments` object at `path`; the base model's `bands` are the overrides' default.
    pub(super) fn segments(
        &mut self,
        json: &Json,
        path: &Path,
        draft: &Draft,
        bands: &Option<Vec<Band>>,
        inputs: &mut InputTable,
    ) -> (Option<Segments>, Vec<Override>) {
        let mut overrides = Vec::new();
        let Some(members) = self.object(json, path) else { return (None, overrides) };
        self.allow_keys(members, &["input", "overrides", "description"], path);
        self.description(members, path);
        let key = self.required(members, "input", path).and_then(|k| self.nonempty_text(k, &path.key("input")));
        let mut by_category = Categories::default();
        let overrides_path = path.key("overrides");
        let entries = self.required(members, "overrides", path).and_then(|ov| self.object(ov, &overrides_path));
        for (category, body) in entries.unwrap_or_default() {
            let p = overrides_path.key(category);
            let Some(override_members) = self.object(body, &p) else { continue };
            self.allow_keys(override_members, &["weights", "normalize", "bands", "band_hysteresis", "description"], &p);
            self.description(override_members, &p);
            let weights = match body.get("weights") {
                Some(w) => self.override_weights(w, &p.key("weights"), draft),
                None => draft.weights.clone(),
            };
            let normalizers = match body.get("normalize") {
                Some(n) => self.override_normalizers(n, &p.key("normalize"), draft, inputs),
                None => draft.normalizers.clone(),
            };
            let bands = match body.get("bands") {
                Some(b) => self.bands(b, &p.key("bands")),
                None => bands.clone(),
            };
            let band_hysteresis =
                body.get("band_hysteresis").and_then(|h| self.non_negative(h, &p.key("band_hysteresis")));
            by_category.insert(category.clone(), overrides.len());
            overrides.push(Override { category: category.clone(), weights, normalizers, bands, band_hysteresis });
        }
        let segments = key.map(|k| {
            let slot = inputs.slot_of(k);
            inputs.slots[slot].categorical = true;
            Segments { slot, overrides: by_category }
        });
        (segments, overrides)
    }

    /// The base weights with the override's, by component name.
    fn override_weights(&mut self, json: &Json, path: &Path, draft: &Draft) -> Vec<f64> {
        let mut weights = draft.weights.clone();
        for (name, value) in self.object(json, path).unwrap_or_default() {
            let vp = path.key(name);
            let Some(v) = self.number(value, &vp) else { continue };
            if v < 0.0 {
                self.fault(&vp, format!("must be 0 or more ({})", fmt_num(v)));
            }
            match draft.names.get(name) {
                Some((id, _)) => weights[*id] = v,
                None => self.fault(&vp, format!("no component is named \"{name}\"")),
            }
        }
        weights
    }

    /// The base normalizers with the override's, by leaf name.
    fn override_normalizers(
        &mut self,
        json: &Json,
        path: &Path,
        draft: &Draft,
        inputs: &mut InputTable,
    ) -> Vec<Option<Normalizer>> {
        let mut normalizers = draft.normalizers.clone();
        for (name, value) in self.object(json, path).unwrap_or_default() {
            let vp = path.key(name);
            match draft.names.get(name) {
                Some((id, _)) if !draft.is_group[*id] => {
                    let parsed = self.normalizer(value, &vp);
                    if let (Some(normalizer), Some(slot)) = (&parsed, draft.nodes[*id].slot) {
                        inputs.mark(slot, normalizer);
                    }
                    normalizers[*id] = parsed;
                }
                Some(_) => self.fault(&vp, format!("\"{name}\" is a group; only leaves have normalizers")),
                None => self.fault(&vp, format!("no component is named \"{name}\"")),
            }
        }
        normalizers
    }
}
