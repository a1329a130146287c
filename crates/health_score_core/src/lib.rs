//! The scoring model, in plain Rust: parse, validate, normalize, score, explain.
//! Nothing here knows about PostgreSQL; `crate::pg` converts and caches around it.

pub mod auc;
pub mod backtest;
pub mod bytes;
pub mod calibrate;
pub mod drivers;
pub mod error;
pub mod fit;
pub mod interrupts;
pub mod json;
pub mod limits;
pub mod manual;
pub mod model;
pub mod normalize;
pub mod parallel;
pub mod parent;
pub mod score;
pub mod shapes;
pub mod solver;
pub mod stored;
pub mod suggest;
pub mod trend;
pub mod value;

pub use auc::AucState;
pub use backtest::BacktestState;
pub use error::{Error, Fault, Result};
pub use json::Json;
pub use model::{Band, Model};
pub use parent::{Child, ParentHealth, ParentState};
pub use score::{Evaluation, Explained, NodeResult, Scratch, Status, Summary};
pub use trend::{Trend, TrendState};
pub use value::Value;

use std::borrow::Cow;

/// The value of one key of a JSON input object, as the format reads it.
pub fn value_from_json(json: Option<&Json>) -> Value<'_> {
    match json {
        None | Some(Json::Null) => Value::Missing,
        Some(Json::Number(v)) => Value::Number { value: *v, text: None },
        Some(Json::String(s)) => Value::Text(Cow::Borrowed(s)),
        Some(Json::Bool(b)) => Value::Bool(*b),
        Some(other @ (Json::Array(_) | Json::Object(_))) => Value::Structured(Cow::Owned(other.to_text())),
    }
}

impl Model {
    /// The model's input values read from a JSON object (anything else reads as all missing).
    pub fn values_from_json<'j>(&self, input: &'j Json) -> Vec<Value<'j>> {
        self.inputs.iter().map(|slot| value_from_json(input.get(&slot.key))).collect()
    }
}
