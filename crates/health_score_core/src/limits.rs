//! The documented limits on a model (docs/security.md), checked before anything recurses
//! over it: validation, scoring and explaining walk the model recursively, and an unbounded
//! model would let any role that may call them overflow the server's stack or exhaust its
//! memory. The walk here is iterative and linear in the model's size.

use super::error::Fault;
use super::interrupts::Ticker;
use super::json::Json;
use super::model::Path;

/// The largest model, in bytes of its jsonb value.
pub const MAX_MODEL_BYTES: usize = 16 * 1024 * 1024;
/// The deepest nesting of JSON arrays and objects in a model or an input (about 126 levels
/// of groups).
pub const MAX_JSON_DEPTH: usize = 256;
/// The most components (groups and leaves, in the base model and every segment) in a model.
pub const MAX_COMPONENTS: usize = 100_000;
/// The longest input key, in bytes.
pub const MAX_INPUT_KEY_BYTES: usize = 1024;

/// The first limit `json` exceeds, as a fault at the JSON path where it does.
pub fn check(json: &Json) -> Result<(), Fault> {
    // (container, depth, path to it): only containers are pushed, and a path is built for
    // each, so the walk costs O(size * depth) at worst, with depth bounded
    let mut stack: Vec<(&Json, usize, Path)> = vec![(json, 1, Path::default())];
    let mut components = 0usize;
    let mut ticker = Ticker::default();
    while let Some((value, depth, path)) = stack.pop() {
        ticker.tick();
        if depth > MAX_JSON_DEPTH {
            return Err(fault(&path, format!("nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects")));
        }
        match value {
            Json::Array(items) => {
                for (i, item) in items.iter().enumerate().rev() {
                    if matches!(item, Json::Array(_) | Json::Object(_)) {
                        stack.push((item, depth + 1, path.index(i)));
                    }
                }
            }
            Json::Object(members) => {
                for (key, member) in members.iter().rev() {
                    let member_path = || path.key(key);
                    match (key.as_str(), member) {
                        ("components", Json::Array(items)) => {
                            components += items.len();
                            if components > MAX_COMPONENTS {
                                return Err(fault(
                                    &member_path(),
                                    format!("more than {MAX_COMPONENTS} components in one model"),
                                ));
                            }
                        }
                        ("input", Json::String(s)) if s.len() > MAX_INPUT_KEY_BYTES => {
                            return Err(fault(
                                &member_path(),
                                format!("an input key of {} bytes is longer than {MAX_INPUT_KEY_BYTES}", s.len()),
                            ));
                        }
                        _ => {}
                    }
                    if matches!(member, Json::Array(_) | Json::Object(_)) {
                        stack.push((member, depth + 1, member_path()));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn fault(path: &Path, message: String) -> Fault {
    Fault { path: path.to_string(), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> Json {
        let mut j = Json::Object(vec![("name".into(), Json::String("x".into()))]);
        for _ in 0..levels {
            j = Json::Object(vec![
                ("name".into(), Json::String("g".into())),
                ("components".into(), Json::Array(vec![j])),
            ]);
        }
        j
    }

    #[test]
    fn depth_is_checked_without_recursion() {
        assert!(check(&nested(100)).is_ok());
        let f = check(&nested(1_000)).unwrap_err();
        assert!(f.message.contains("nested deeper than 256"), "{f}");
        assert!(f.path.starts_with("components[0].components[0]"), "{f}");
    }

    #[test]
    fn components_are_counted_across_groups() {
        let leaf = || Json::Object(vec![("name".into(), Json::String("x".into()))]);
        let group = |n: usize| Json::Object(vec![("components".into(), Json::Array((0..n).map(|_| leaf()).collect()))]);
        let model = |groups: usize, each: usize| {
            Json::Object(vec![("components".into(), Json::Array((0..groups).map(|_| group(each)).collect()))])
        };
        assert!(check(&model(10, 9_999)).is_ok());
        let f = check(&model(11, 9_999)).unwrap_err();
        assert!(f.message.contains("more than 100000 components"), "{f}");
    }
}
