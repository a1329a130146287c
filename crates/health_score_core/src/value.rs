//! Input values as the scoring core sees them, whatever they were read from (a JSONB object,
//! a table row, metric rows).

use std::borrow::Cow;

use super::json::format_number;
use super::normalize::Unusable;

#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// Absent key, JSON `null`, SQL `NULL`.
    Missing,
    /// A number. `value` may be infinite when the source number is beyond the double range
    /// (then it is invalid for numeric normalizers). `text` is the source's own text for the
    /// number (`3.0` for a JSON `3.0`, a column's text output), which is its category; when
    /// the reader did not need it, it is `None` and the shortest double text stands in.
    Number {
        value: f64,
        text: Option<Cow<'a, str>>,
    },
    /// A string: numeric normalizers parse it; its category is itself.
    Text(Cow<'a, str>),
    Bool(bool),
    /// An object or an array, with its JSON text: invalid for every normalizer.
    Structured(Cow<'a, str>),
}

impl<'a> Value<'a> {
    pub fn number_from(value: f64) -> Value<'static> {
        Value::Number { value, text: None }
    }

    pub fn is_missing(&self) -> bool {
        matches!(self, Value::Missing)
    }

    /// The finite number a numeric normalizer reads.
    #[inline]
    pub fn number(&self) -> Result<f64, Unusable> {
        match self {
            Value::Number { value, .. } if value.is_finite() => Ok(*value),
            Value::Number { .. } => Err(Unusable::NotFinite),
            Value::Text(s) => parse_number(s),
            Value::Bool(_) | Value::Structured(_) | Value::Missing => Err(Unusable::NotANumber),
        }
    }

    /// The category text (`input->>'key'` for JSON, `col::text` for a row); None for objects,
    /// arrays and missing values.
    pub fn category(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Text(s) => Some(Cow::Borrowed(s.as_ref())),
            Value::Number { text: Some(t), .. } => Some(Cow::Borrowed(t.as_ref())),
            Value::Number { value, text: None } => Some(Cow::Owned(format_number(*value))),
            Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Value::Structured(_) | Value::Missing => None,
        }
    }

    /// The input's text as `explain` shows it; None when missing.
    pub fn raw_text(&self) -> Option<String> {
        match self {
            Value::Missing => None,
            Value::Structured(s) => Some(s.to_string()),
            other => other.category().map(|c| c.into_owned()),
        }
    }
}

/// A string as a number, by the format's grammar: after trimming ASCII spaces,
/// `[+-]?(digits[.digits?] | .digits)([eE][+-]?digits)?`, finite as a double.
pub fn parse_number(text: &str) -> Result<f64, Unusable> {
    let s = text.trim_matches(' ');
    if !matches_number_grammar(s.as_bytes()) {
        return Err(Unusable::NotANumber);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(Unusable::NotFinite),
        Err(_) => Err(Unusable::NotANumber),
    }
}

fn matches_number_grammar(b: &[u8]) -> bool {
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - frac_start;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_accepts_the_documented_forms() {
        for (s, v) in [
            ("42", 42.0),
            (" 42 ", 42.0),
            ("+1.5", 1.5),
            ("-3.", -3.0),
            (".25", 0.25),
            ("1e3", 1000.0),
            ("2.5E-1", 0.25),
            ("-.5e+1", -5.0),
        ] {
            assert_eq!(parse_number(s), Ok(v), "{s:?}");
        }
    }

    #[test]
    fn grammar_rejects_everything_else() {
        for s in [
            "", " ", ".", "e5", "1e", "1e+", "abc", "NaN", "Infinity", "inf", "0x10", "1,5", "--1", "1 2", "\t1",
            "1.2.3",
        ] {
            assert_eq!(parse_number(s), Err(Unusable::NotANumber), "{s:?}");
        }
        assert_eq!(parse_number("1e400"), Err(Unusable::NotFinite));
    }

    #[test]
    fn categories_follow_postgres_text() {
        assert_eq!(Value::Bool(true).category().as_deref(), Some("true"));
        assert_eq!(Value::number_from(3.0).category().as_deref(), Some("3"));
        let v = Value::Number { value: 3.0, text: Some(Cow::Borrowed("3.0")) };
        assert_eq!(v.category().as_deref(), Some("3.0"));
        assert_eq!(Value::Structured(Cow::Borrowed("[1]")).category(), None);
    }
}
