//! The component tree: leaves and groups, their names, weights and rules.

use super::{is_valid_name, Checker, Draft, MissingRule, Node, OnInvalid, Path, NAME_RULE};
use crate::json::{write_json_string, Json};

impl Checker {
    pub(super) fn components(
        &mut self,
        json: &Json,
        path: &Path,
        parent: Option<usize>,
        inherited: (MissingRule, OnInvalid),
        draft: &mut Draft,
    ) -> Vec<usize> {
        crate::interrupts::check_stack();
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
