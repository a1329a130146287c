//! The typed readers every rule uses (each records a fault at its path and returns `None`),
//! and the bands.

use std::collections::HashSet;

use super::{Band, Checker, MissingRule, OnInvalid, Path};
use crate::error::Fault;
use crate::json::Json;

pub(super) fn fmt_num(v: f64) -> String {
    crate::json::format_number(v)
}

impl Checker {
    pub(super) fn fault(&mut self, path: &Path, message: impl Into<String>) {
        self.faults.push(Fault { path: path.to_string(), message: message.into() });
    }

    pub(super) fn object<'j>(&mut self, json: &'j Json, path: &Path) -> Option<&'j [(String, Json)]> {
        match json {
            Json::Object(members) => Some(members),
            other => {
                self.fault(path, format!("must be an object, not {}", other.kind()));
                None
            }
        }
    }

    pub(super) fn allow_keys(&mut self, members: &[(String, Json)], allowed: &[&str], path: &Path) {
        for (k, _) in members {
            if !allowed.contains(&k.as_str()) {
                self.fault(&path.key(k), format!("unknown key; allowed keys here: {}", allowed.join(", ")));
            }
        }
    }

    pub(super) fn number(&mut self, json: &Json, path: &Path) -> Option<f64> {
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

    pub(super) fn unit(&mut self, json: &Json, path: &Path) -> Option<f64> {
        let v = self.number(json, path)?;
        if (0.0..=1.0).contains(&v) {
            Some(v)
        } else {
            self.fault(path, format!("must be between 0 and 1 ({})", fmt_num(v)));
            None
        }
    }

    pub(super) fn positive(&mut self, json: &Json, path: &Path) -> Option<f64> {
        let v = self.number(json, path)?;
        if v > 0.0 {
            Some(v)
        } else {
            self.fault(path, format!("must be greater than 0 ({})", fmt_num(v)));
            None
        }
    }

    pub(super) fn non_negative(&mut self, json: &Json, path: &Path) -> Option<f64> {
        let v = self.number(json, path)?;
        if v >= 0.0 {
            Some(v)
        } else {
            self.fault(path, format!("must be 0 or more ({})", fmt_num(v)));
            None
        }
    }

    pub(super) fn boolean(&mut self, json: &Json, path: &Path) -> Option<bool> {
        match json {
            Json::Bool(b) => Some(*b),
            other => {
                self.fault(path, format!("must be true or false, not {}", other.kind()));
                None
            }
        }
    }

    pub(super) fn text<'j>(&mut self, json: &'j Json, path: &Path) -> Option<&'j str> {
        match json {
            Json::String(s) => Some(s),
            other => {
                self.fault(path, format!("must be a string, not {}", other.kind()));
                None
            }
        }
    }

    pub(super) fn nonempty_text<'j>(&mut self, json: &'j Json, path: &Path) -> Option<&'j str> {
        let s = self.text(json, path)?;
        if s.is_empty() {
            self.fault(path, "must not be empty");
            None
        } else {
            Some(s)
        }
    }

    pub(super) fn required<'j>(&mut self, members: &'j [(String, Json)], key: &str, path: &Path) -> Option<&'j Json> {
        let found = members.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        if found.is_none() {
            self.fault(&path.key(key), "is required");
        }
        found
    }

    pub(super) fn missing_rule(&mut self, json: &Json, path: &Path) -> Option<MissingRule> {
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

    pub(super) fn on_invalid(&mut self, json: &Json, path: &Path) -> Option<OnInvalid> {
        match json {
            Json::String(s) if s == "error" => Some(OnInvalid::Error),
            Json::String(s) if s == "missing" => Some(OnInvalid::Missing),
            _ => {
                self.fault(path, "must be \"error\" or \"missing\"");
                None
            }
        }
    }

    pub(super) fn description(&mut self, members: &[(String, Json)], path: &Path) -> Option<String> {
        let d = members.iter().find(|(k, _)| k == "description")?;
        self.text(&d.1, &path.key("description")).map(str::to_string)
    }

    pub(super) fn bands(&mut self, json: &Json, path: &Path) -> Option<Vec<Band>> {
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
}
