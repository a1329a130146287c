//! The one error type of health_score. Every variant maps to a SQLSTATE so that the SQL layer
//! can raise it unchanged, with a message, an optional detail and a hint.

use std::fmt;

/// A fault in a model: where (a JSON path such as `components[2].normalize.max`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", shortened(&self.path, MESSAGE_VALUE_CHARS), self.message)
    }
}

/// `text` within `max` characters: whole when it fits, else its start and end around "…"
/// (a JSON path's end says where, its start from what).
pub fn shortened(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let count = text.chars().count();
    if count <= max {
        return text.into();
    }
    let head = max / 3;
    let tail = max - head - 1;
    let head_end = text.char_indices().nth(head).map_or(text.len(), |(i, _)| i);
    let tail_start = text.char_indices().nth(count - tail).map_or(text.len(), |(i, _)| i);
    format!("{}…{}", &text[..head_end], &text[tail_start..]).into()
}

/// The most characters of a message, detail and hint as raised: together under 2,000, so
/// that no input, however long, makes a long error (values in them are cut far shorter).
pub const MAX_MESSAGE_CHARS: usize = 1000;
pub const MAX_DETAIL_CHARS: usize = 600;
pub const MAX_HINT_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The model breaks the format (22023). Never empty.
    InvalidModel(Vec<Fault>),
    /// An input value a component cannot use, with `on_invalid` = `error` (22023).
    InvalidInput { component: String, input: String, value: String, reason: String },
    /// A bad argument other than the model: a bad model name, a key twice in `score_agg` (22023).
    InvalidArgument { message: String, hint: Option<String> },
    /// No registered model of that name or version (42704). `suggestions` are registered names
    /// close in spelling; `registered` is how many models there are at all.
    /// `on_worker_without_registry`: looked up on a worker of a Citus cluster that has no copy
    /// of the coordinator's registry (docs/scale-out.md).
    UnknownModel {
        name: String,
        version: Option<i32>,
        suggestions: Vec<String>,
        registered: usize,
        on_worker_without_registry: bool,
    },
    /// A table row has no column for an input (42703).
    UndefinedColumn { input: String, row_type: String },
    /// A table row's column has a type the input cannot be read from (42804).
    DatatypeMismatch { input: String, column_type: String, wanted: String },
    /// A source checked as a whole (`create_view`) lacks columns for some inputs (42703) or has
    /// columns of types they cannot be read from (42804, `types`): every one named.
    SourceColumns { types: bool, message: String, hint: String },
    /// More data than a computation supports (54000).
    LimitExceeded { message: String, hint: String },
    /// Memory for a computation could not be had (53200), as PostgreSQL reports it: an
    /// allocation that fails must not abort the server process.
    OutOfMemory { what: String, bytes: usize },
    /// A function that keeps the cluster's own state (the registry, schedules, views, history
    /// settings, the alert queue) called on a worker of a Citus cluster (0A000).
    CoordinatorOnly { what: String },
    /// Any of the above while scoring one entity of a snapshot: the same SQLSTATE and hint,
    /// with the entity's key in the message.
    ForEntity { key: String, error: Box<Error> },
}

impl Error {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::InvalidModel(_) | Error::InvalidInput { .. } | Error::InvalidArgument { .. } => "22023",
            Error::UnknownModel { .. } => "42704",
            Error::UndefinedColumn { .. } => "42703",
            Error::DatatypeMismatch { .. } => "42804",
            Error::SourceColumns { types: false, .. } => "42703",
            Error::SourceColumns { types: true, .. } => "42804",
            Error::LimitExceeded { .. } => "54000",
            Error::OutOfMemory { .. } => "53200",
            Error::CoordinatorOnly { .. } => "0A000",
            Error::ForEntity { error, .. } => error.sqlstate(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Error::InvalidModel(faults) => match faults.as_slice() {
                [only] => format!("invalid health model: {only}"),
                [first, rest @ ..] => {
                    format!("invalid health model: {first} (and {} more)", rest.len())
                }
                [] => "invalid health model".to_string(),
            },
            Error::InvalidInput { component, input, value, reason } => {
                let quoted = quoted_excerpt(value);
                format!("component \"{component}\" (input \"{input}\"): invalid value {quoted}: {reason}")
            }
            Error::InvalidArgument { message, .. } => message.clone(),
            Error::UnknownModel { name, version: Some(v), .. } => {
                format!("health model {} has no version {v}", quoted_excerpt(name))
            }
            Error::UnknownModel { name, version: None, .. } => {
                format!("health model {} does not exist", quoted_excerpt(name))
            }
            Error::UndefinedColumn { input, row_type } => {
                format!("input \"{input}\" names no column of the row ({row_type})")
            }
            Error::DatatypeMismatch { input, column_type, wanted } => {
                format!("input \"{input}\" is a column of type {column_type}, but {wanted} is needed")
            }
            Error::LimitExceeded { message, .. } => message.clone(),
            Error::SourceColumns { message, .. } => message.clone(),
            Error::OutOfMemory { what, bytes } => format!("out of memory: {what} needed {bytes} more bytes"),
            Error::CoordinatorOnly { what } => {
                format!("{what} runs on the Citus coordinator only, and this server is a worker of a cluster")
            }
            Error::ForEntity { key, error } => {
                format!("entity_key {}: {}", quoted_excerpt(key), error.message())
            }
        }
    }

    pub fn detail(&self) -> Option<String> {
        match self {
            Error::InvalidModel(faults) if faults.len() > 1 => {
                const LISTED: usize = 10;
                let mut detail = faults.iter().take(LISTED).map(|f| f.to_string()).collect::<Vec<_>>().join("\n");
                if faults.len() > LISTED {
                    detail.push_str(&format!(
                        "\n(and {} more: health_score.validate lists them all)",
                        faults.len() - LISTED
                    ));
                }
                Some(detail)
            }
            Error::ForEntity { error, .. } => error.detail(),
            _ => None,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::InvalidModel(_) => Some(
                "health_score.validate(model) lists every fault with its JSON path; the format is in docs/model-format.md"
                    .to_string(),
            ),
            Error::InvalidInput { .. } => Some(
                "fix the value, or set \"on_invalid\": \"missing\" on the component, a group or the model to treat such values as missing"
                    .to_string(),
            ),
            Error::InvalidArgument { hint, .. } => hint.clone(),
            Error::UnknownModel { on_worker_without_registry: true, .. } => Some(
                "this server is a worker of a Citus cluster, which reads registered models from the copy health_score.distribute() makes: run SELECT health_score.distribute() once on the coordinator (docs/scale-out.md), or pass the model inline"
                    .to_string(),
            ),
            Error::UnknownModel { name, suggestions, version, registered, .. } => {
                let mut hint = match suggestions.as_slice() {
                    [] if *registered == 0 => "no health model is registered yet; register one with health_score.set_model(name, config)".to_string(),
                    [] => "no registered model has a similar name; SELECT DISTINCT name FROM health_score.models lists them".to_string(),
                    names => format!(
                        "registered models with similar names: {}",
                        names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
                    ),
                };
                if version.is_some() {
                    hint = format!("see SELECT version FROM health_score.models WHERE name = '{}'", name.replace('\'', "''"));
                } else if name.trim_start().starts_with('{') {
                    hint.push_str("; to pass a model inline, cast it: '{...}'::jsonb");
                }
                Some(hint)
            }
            // ROW(a.*) and other anonymous records carry no column names at all
            Error::UndefinedColumn { row_type, .. } if row_type == "record" => Some(
                "an anonymous record (such as ROW(a.*)) has no column names: pass the table's row itself (score('m', a) for FROM accounts a) or cast it to a named row type"
                    .to_string(),
            ),
            Error::UndefinedColumn { .. } => Some(
                "every input the model reads must be a column of the row; rename the column in a view, or set the component's \"input\""
                    .to_string(),
            ),
            Error::DatatypeMismatch { .. } => Some(
                "numeric normalizers read smallint, integer, bigint, numeric, real or double precision columns; cast the column in a view"
                    .to_string(),
            ),
            Error::LimitExceeded { hint, .. } => Some(hint.clone()),
            Error::SourceColumns { hint, .. } => Some(hint.clone()),
            Error::OutOfMemory { .. } => Some("work on fewer rows at a time, or give the server more memory".into()),
            Error::CoordinatorOnly { .. } => Some(
                "connect to the coordinator: it keeps the registry, the schedules, the views, the history's settings and the alert queue; the workers hold shards (docs/scale-out.md)"
                    .into(),
            ),
            Error::ForEntity { error, .. } => error.hint(),
        }
    }
}

/// Room in `v` for `additional` more items, or `OutOfMemory` instead of the abort that a
/// failed growth of a `Vec` is: for buffers whose size the rows decide.
pub fn reserve<T>(v: &mut Vec<T>, additional: usize, what: &str) -> Result<()> {
    if v.capacity() - v.len() >= additional {
        return Ok(());
    }
    v.try_reserve(additional).map_err(|_| Error::OutOfMemory {
        what: what.to_string(),
        bytes: additional.saturating_mul(std::mem::size_of::<T>()),
    })
}

/// Longer values are cut in messages: enough to recognise the value, not a 20,000-character line.
pub(crate) const MESSAGE_VALUE_CHARS: usize = 200;

/// `text` as a JSON string, cut after `MESSAGE_VALUE_CHARS` characters with "…" and its
/// length when it is longer.
pub fn quoted_excerpt(text: &str) -> String {
    let mut quoted = String::new();
    match text.char_indices().nth(MESSAGE_VALUE_CHARS) {
        None => super::json::write_json_string(text, &mut quoted),
        Some((cut, _)) => {
            super::json::write_json_string(&format!("{}…", &text[..cut]), &mut quoted);
            quoted.push_str(&format!(" ({} characters)", text.chars().count()));
        }
    }
    quoted
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(value: &str) -> Error {
        Error::InvalidInput { component: "c".into(), input: "i".into(), value: value.into(), reason: "r".into() }
    }

    #[test]
    fn long_paths_keep_their_start_and_end() {
        let path = "components[0].".repeat(300) + "weight";
        let f = Fault { path: path.clone(), message: "must be positive".into() };
        let shown = f.to_string();
        assert!(shown.chars().count() < 250, "{shown}");
        assert!(shown.starts_with("components[0].components[0]"), "{shown}");
        assert!(shown.ends_with("components[0].weight: must be positive"), "{shown}");
        assert_eq!(shortened("abc", 3), "abc");
        assert_eq!(shortened("abcdef", 4).chars().count(), 4);
    }

    #[test]
    fn short_values_are_named_whole() {
        assert_eq!(invalid("a\"b").message(), r#"component "c" (input "i"): invalid value "a\"b": r"#);
        let exact = "é".repeat(MESSAGE_VALUE_CHARS);
        assert_eq!(invalid(&exact).message(), format!("component \"c\" (input \"i\"): invalid value \"{exact}\": r"));
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary_with_their_length() {
        let long = format!("{}{}", "é".repeat(MESSAGE_VALUE_CHARS), "[".repeat(20_000));
        let message = invalid(&long).message();
        let head = "é".repeat(MESSAGE_VALUE_CHARS);
        assert_eq!(message, format!("component \"c\" (input \"i\"): invalid value \"{head}…\" (20200 characters): r"));
        let key = Error::ForEntity { key: "k".repeat(1000), error: Box::new(invalid("x")) };
        assert!(key.message().starts_with(&format!("entity_key \"{}…\" (1000 characters): ", "k".repeat(200))));
    }
}
