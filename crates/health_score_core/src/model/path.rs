//! JSON paths of faults, and the rule for names.

use crate::json::write_json_string;

/// A JSON path under construction, printed as `components[2].normalize.max` or `$`.
#[derive(Debug, Clone, Default)]
pub struct Path(Vec<PathStep>);

#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

impl Path {
    pub fn key(&self, key: &str) -> Path {
        let mut p = self.clone();
        p.0.push(PathStep::Key(key.to_string()));
        p
    }

    pub fn index(&self, i: usize) -> Path {
        let mut p = self.clone();
        p.0.push(PathStep::Index(i));
        p
    }

    fn is_identifier(key: &str) -> bool {
        let mut chars = key.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("$");
        }
        let mut out = String::new();
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Index(n) => out.push_str(&format!("[{n}]")),
                PathStep::Key(k) => {
                    if i > 0 {
                        out.push('.');
                    }
                    if Path::is_identifier(k) {
                        out.push_str(k);
                    } else {
                        write_json_string(k, &mut out);
                    }
                }
            }
        }
        f.write_str(&out)
    }
}

pub fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

pub const NAME_RULE: &str = "must match ^[a-z][a-z0-9_]{0,62}$ (lower-case letters, digits and _, starting with a letter, at most 63 characters)";
