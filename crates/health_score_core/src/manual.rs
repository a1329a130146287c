//! CSM inputs: the values an account manager records by hand for one entity's inputs, and the
//! band override of an entity. The SQL side gathers an entity's active ones into one JSON
//! object (`{"inputs": {"<input>": {"value": "...", ...}}, "band": {"band": "...", ...}}`);
//! this reads it, checks a value against a model when it is recorded, and applies the values
//! over those read from the source.

use std::borrow::Cow;

use super::error::{shortened, Error, MESSAGE_VALUE_CHARS};
use super::json::Json;
use super::model::{Band, Model, StepKind};
use super::value::Value;

/// One manual input: the input key, its value as text (a number's text reads as the number),
/// and what the SQL side recorded about it (who, when, until when, why) for `explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct ManualInput {
    pub key: String,
    pub value: String,
    pub detail: Json,
}

/// A band forced for an entity, with what was recorded about it.
#[derive(Debug, Clone, PartialEq)]
pub struct BandOverride {
    pub band: String,
    pub detail: Json,
}

/// An entity's active manual inputs and band override.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Manual {
    pub inputs: Vec<ManualInput>,
    pub band: Option<BandOverride>,
}

impl Manual {
    /// Reads the JSON the SQL side builds; entries without a text value (which it never
    /// writes) are left out rather than guessed at.
    pub fn from_json(json: &Json) -> Manual {
        let mut manual = Manual::default();
        if let Some(Json::Object(inputs)) = json.get("inputs") {
            for (key, detail) in inputs {
                if let Some(Json::String(value)) = detail.get("value") {
                    manual.inputs.push(ManualInput { key: key.clone(), value: value.clone(), detail: detail.clone() });
                }
            }
        }
        if let Some(detail @ Json::Object(_)) = json.get("band") {
            if let Some(Json::String(band)) = detail.get("band") {
                manual.band = Some(BandOverride { band: band.clone(), detail: detail.clone() });
            }
        }
        manual
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty() && self.band.is_none()
    }

    /// Replaces (or fills) the values of the inputs the model reads that have a manual value;
    /// returns, per input slot of the model, the manual input applied (None: the source's).
    pub fn apply(&self, model: &Model, values: &mut [Value<'_>]) -> Vec<Option<usize>> {
        let mut applied = vec![None; model.inputs.len()];
        for (i, manual) in self.inputs.iter().enumerate() {
            if let Some(slot) = model.inputs.iter().position(|s| s.key == manual.key) {
                if let Some(value) = values.get_mut(slot) {
                    *value = Value::Text(Cow::Owned(manual.value.clone()));
                    applied[slot] = Some(i);
                }
            }
        }
        applied
    }
}

impl Model {
    /// The band named `name` among the bands in force under `segment`, with its rank; None
    /// when the model has no bands there or none of that name.
    pub fn band_named(&self, segment: Option<usize>, name: &str) -> Option<(usize, &Band)> {
        let bands = self.variant(segment).bands.as_ref()?;
        bands.iter().enumerate().find(|(_, b)| b.name == name)
    }

    /// The names of the bands of every list the model has (the base's, then each override's).
    pub fn band_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        let lists = std::iter::once(&self.base).chain(self.overrides.iter().map(|(_, v)| v));
        for band in lists.filter_map(|v| v.bands.as_ref()).flatten() {
            if !names.contains(&band.name.as_str()) {
                names.push(&band.name);
            }
        }
        names
    }

    /// A component's JSON path in the model (`components[2].components[0]`).
    pub fn component_path(&self, id: usize) -> String {
        let mut steps = Vec::new();
        let mut node = id;
        loop {
            let siblings = match self.nodes[node].parent {
                Some(p) => &self.nodes[p].children,
                None => &self.top,
            };
            steps.push(siblings.iter().position(|&s| s == node).unwrap_or(0));
            match self.nodes[node].parent {
                Some(p) => node = p,
                None => break,
            }
        }
        steps.iter().rev().map(|i| format!("components[{i}]")).collect::<Vec<_>>().join(".")
    }

    /// Whether a manual value of input `key` is one every leaf reading that input, in the base
    /// model and in every segment override, can use: an error (22023) naming the component,
    /// its path and the override otherwise, and when the model reads no such input.
    pub fn check_manual_value(&self, key: &str, value: &str) -> Result<(), Error> {
        let Some(slot) = self.inputs.iter().position(|s| s.key == key) else {
            let inputs: Vec<&str> = self.inputs.iter().map(|s| s.key.as_str()).collect();
            return Err(Error::InvalidArgument {
                message: format!("the model reads no input \"{}\"", shortened(key, MESSAGE_VALUE_CHARS)),
                hint: Some(format!("its inputs: {}", inputs.join(", "))),
            });
        };
        let text = Value::Text(Cow::Borrowed(value));
        let variants =
            std::iter::once((None, &self.base)).chain(self.overrides.iter().map(|(name, v)| (Some(name), v)));
        for (segment, variant) in variants {
            for step in &variant.program {
                let StepKind::Leaf { slot: s, normalizer } = &step.kind else { continue };
                if *s != slot {
                    continue;
                }
                if let Err(why) = normalizer.apply(&text) {
                    let under = segment
                        .map(|name| format!(" under segment override \"{}\"", shortened(name, 100)))
                        .unwrap_or_default();
                    return Err(Error::InvalidArgument {
                        message: format!(
                            "manual input \"{}\": component \"{}\" at {}{under} cannot use \"{}\": {}",
                            shortened(key, 100),
                            shortened(&self.nodes[step.id].name, 100),
                            self.component_path(step.id),
                            shortened(value, MESSAGE_VALUE_CHARS),
                            why.reason()
                        ),
                        hint: Some(format!(
                            "record a value its {} normalizer accepts{}",
                            normalizer.type_name(),
                            if normalizer.is_categorical() { " (one of its categories)" } else { " (a number)" }
                        )),
                    });
                }
            }
        }
        Ok(())
    }
}
