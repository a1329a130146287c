//! The normalizers of format 1, read and checked.

use super::checker::fmt_num;
use super::{Checker, Path};
use crate::json::{write_json_string, Json};
use crate::normalize::{Categories, Normalizer};

impl Checker {
    pub(super) fn normalizer(&mut self, json: &Json, path: &Path) -> Option<Normalizer> {
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
