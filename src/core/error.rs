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
        write!(f, "{}: {}", self.path, self.message)
    }
}

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
    UnknownModel { name: String, version: Option<i32>, suggestions: Vec<String>, registered: usize },
    /// A table row has no column for an input (42703).
    UndefinedColumn { input: String, row_type: String },
    /// A table row's column has a type the input cannot be read from (42804).
    DatatypeMismatch { input: String, column_type: String, wanted: String },
    /// More data than a computation supports (54000).
    LimitExceeded { message: String, hint: String },
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
            Error::LimitExceeded { .. } => "54000",
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
                let mut quoted = String::new();
                super::json::write_json_string(value, &mut quoted);
                format!("component \"{component}\" (input \"{input}\"): invalid value {quoted}: {reason}")
            }
            Error::InvalidArgument { message, .. } => message.clone(),
            Error::UnknownModel { name, version: Some(v), .. } => {
                format!("health model \"{name}\" has no version {v}")
            }
            Error::UnknownModel { name, version: None, .. } => {
                format!("health model \"{name}\" does not exist")
            }
            Error::UndefinedColumn { input, row_type } => {
                format!("input \"{input}\" names no column of the row ({row_type})")
            }
            Error::DatatypeMismatch { input, column_type, wanted } => {
                format!("input \"{input}\" is a column of type {column_type}, but {wanted} is needed")
            }
            Error::LimitExceeded { message, .. } => message.clone(),
            Error::ForEntity { key, error } => {
                let mut quoted = String::new();
                super::json::write_json_string(key, &mut quoted);
                format!("entity_key {quoted}: {}", error.message())
            }
        }
    }

    pub fn detail(&self) -> Option<String> {
        match self {
            Error::InvalidModel(faults) if faults.len() > 1 => {
                Some(faults.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n"))
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
            Error::UnknownModel { name, suggestions, version, registered } => {
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
            Error::UndefinedColumn { .. } => Some(
                "every input the model reads must be a column of the row; rename the column in a view, or set the component's \"input\""
                    .to_string(),
            ),
            Error::DatatypeMismatch { .. } => Some(
                "numeric normalizers read smallint, integer, bigint, numeric, real or double precision columns; cast the column in a view"
                    .to_string(),
            ),
            Error::LimitExceeded { hint, .. } => Some(hint.clone()),
            Error::ForEntity { error, .. } => error.hint(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
