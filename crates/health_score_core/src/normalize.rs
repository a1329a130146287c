//! Normalizers: a raw input value becomes `n` in `[0, 1]`.

use super::value::Value;

/// `(v - lo) / (hi - lo)` for `lo < hi`, as `(v * scale - origin) * per_unit`. `scale` is 1
/// unless `hi - lo` overflows (then ½) or its reciprocal does (then 2^600; both ends are then
/// tiny): powers of two, so every valid range gives finite constants and the result is the
/// same rounding of the exact quotient. Never NaN for a finite `v`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    scale: f64,
    origin: f64,
    per_unit: f64,
}

impl Unit {
    pub fn new(lo: f64, hi: f64) -> Unit {
        let scale = if !(hi - lo).is_finite() {
            0.5
        } else if !(1.0 / (hi - lo)).is_finite() {
            f64::powi(2.0, 600)
        } else {
            1.0
        };
        let origin = lo * scale;
        Unit { scale, origin, per_unit: 1.0 / (hi * scale - origin) }
    }

    #[inline(always)]
    pub fn of(&self, v: f64) -> f64 {
        (v * self.scale - self.origin) * self.per_unit
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Normalizer {
    // Constants are derived once (reciprocals instead of per-row divisions); build these
    // with `Normalizer::linear`, `log` and `decay`.
    Linear {
        unit: Unit,
        invert: bool,
    },
    Log {
        min: f64,
        /// ln(1 + x) over [ln(1 + min), ln(1 + max)]; over [min, max] itself when the two
        /// logarithms round to one double (a range too narrow for them to tell apart)
        unit: Unit,
        in_log_space: bool,
        invert: bool,
    },
    Decay {
        half_life: f64,
        /// -1 / half_life, infinite for a subnormal half_life (then divided by instead)
        per_half_life: f64,
    },
    Steps {
        steps: Vec<(f64, f64)>,
        below: f64,
    },
    Curve {
        points: Vec<(f64, f64)>,
    },
    Logistic {
        midpoint: f64,
        steepness: f64,
    },
    Map {
        values: Categories<f64>,
        default: Option<f64>,
    },
}

/// Why a value could not be normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    NotANumber,
    NotFinite,
    UnknownCategory,
    NotACategory,
}

impl Unusable {
    pub fn reason(self) -> &'static str {
        match self {
            Unusable::NotANumber => "not a number",
            Unusable::NotFinite => "not a finite double precision number",
            Unusable::UnknownCategory => "not a category of the map, which has no default",
            Unusable::NotACategory => "objects and arrays are not categories",
        }
    }
}

/// A small lookup from category text, sorted by length and then bytes for binary search:
/// per-row lookups of a few categories are cheaper this way than hashing, and categories of
/// different lengths are told apart without comparing their bytes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Categories<T>(Vec<(String, T)>);

fn by_length_then_bytes(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

impl<T> Categories<T> {
    /// The memory its entries hold, approximately.
    pub fn heap_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<(String, T)>() + self.0.iter().map(|(k, _)| k.capacity()).sum::<usize>()
    }
}

impl<T: Copy> Categories<T> {
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    pub fn insert(&mut self, key: String, value: T) {
        match self.0.binary_search_by(|(k, _)| by_length_then_bytes(k, &key)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    #[inline]
    pub fn get(&self, key: &str) -> Option<T> {
        if self.0.len() > 64 {
            return self.0.binary_search_by(|(k, _)| by_length_then_bytes(k, key)).ok().map(|i| self.0[i].1);
        }
        // A few categories: mark those of the key's length without branching (which category a
        // row has is unpredictable), then compare bytes only with those, usually exactly one.
        let mut candidates = 0u64;
        for (i, (k, _)) in self.0.iter().enumerate() {
            candidates |= ((k.len() == key.len()) as u64) << i;
        }
        while candidates != 0 {
            let i = candidates.trailing_zeros() as usize;
            if self.0[i].0.as_bytes() == key.as_bytes() {
                return Some(self.0[i].1);
            }
            candidates &= candidates - 1;
        }
        None
    }
}

pub fn clamp01(v: f64) -> f64 {
    v.clamp(0.0, 1.0)
}

impl Normalizer {
    pub fn linear(min: f64, max: f64, invert: bool) -> Normalizer {
        Normalizer::Linear { unit: Unit::new(min, max), invert }
    }

    pub fn log(min: f64, max: f64, invert: bool) -> Normalizer {
        let (ln_min, ln_max) = (min.ln_1p(), max.ln_1p());
        if ln_min < ln_max {
            Normalizer::Log { min, unit: Unit::new(ln_min, ln_max), in_log_space: true, invert }
        } else {
            Normalizer::Log { min, unit: Unit::new(min, max), in_log_space: false, invert }
        }
    }

    pub fn decay(half_life: f64) -> Normalizer {
        Normalizer::Decay { half_life, per_half_life: -1.0 / half_life }
    }

    /// The memory it holds beyond its own size, approximately.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Normalizer::Steps { steps, .. } => steps.capacity() * 16,
            Normalizer::Curve { points } => points.capacity() * 16,
            Normalizer::Map { values, .. } => values.heap_bytes(),
            _ => 0,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Normalizer::Linear { .. } => "linear",
            Normalizer::Log { .. } => "log",
            Normalizer::Steps { .. } => "steps",
            Normalizer::Curve { .. } => "curve",
            Normalizer::Logistic { .. } => "logistic",
            Normalizer::Decay { .. } => "decay",
            Normalizer::Map { .. } => "map",
        }
    }

    pub fn is_categorical(&self) -> bool {
        matches!(self, Normalizer::Map { .. })
    }

    #[inline(always)]
    pub fn apply(&self, value: &Value<'_>) -> Result<f64, Unusable> {
        if let Normalizer::Map { values, default } = self {
            let category = value.category().ok_or(Unusable::NotACategory)?;
            return match values.get(category.as_ref()) {
                Some(n) => Ok(n),
                None => default.ok_or(Unusable::UnknownCategory),
            };
        }
        let x = value.number()?;
        Ok(self.apply_number(x))
    }

    /// `n` for a finite number; only for the numeric normalizers.
    #[inline(always)]
    pub fn apply_number(&self, x: f64) -> f64 {
        match self {
            Normalizer::Linear { unit, invert } => flip(clamp01(unit.of(x)), *invert),
            Normalizer::Log { min, unit, in_log_space, invert } => {
                let n = if x <= *min { 0.0 } else { clamp01(unit.of(if *in_log_space { x.ln_1p() } else { x })) };
                flip(n, *invert)
            }
            Normalizer::Steps { steps, below } => {
                // the last step with at <= x
                let passed = count_at_or_below(steps, x);
                if passed == 0 {
                    *below
                } else {
                    steps[passed - 1].1
                }
            }
            Normalizer::Curve { points } => {
                let (x0, y0) = points[0];
                let (xn, yn) = points[points.len() - 1];
                if x <= x0 {
                    return y0;
                }
                if x >= xn {
                    return yn;
                }
                // first point with px > x; x0 < x < xn so 1 <= i < len
                let i = count_at_or_below(points, x);
                let (xa, ya) = points[i - 1];
                let (xb, yb) = points[i];
                // halved where the segment spans more than the largest double
                let along = if (xb - xa).is_finite() {
                    (x - xa) / (xb - xa)
                } else {
                    (x * 0.5 - xa * 0.5) / (xb * 0.5 - xa * 0.5)
                };
                clamp01(ya + (yb - ya) * along)
            }
            Normalizer::Logistic { midpoint, steepness } => 1.0 / (1.0 + (-steepness * (x - midpoint)).exp()),
            Normalizer::Decay { half_life, per_half_life } => {
                let age = x.max(0.0);
                if per_half_life.is_finite() {
                    (age * per_half_life).exp2()
                } else {
                    (-(age / half_life)).exp2()
                }
            }
            Normalizer::Map { .. } => unreachable!("map normalizers read categories"),
        }
    }
}

/// How many of `points` (sorted by strictly increasing first element) have their first element
/// at or below `x`. Short lists are counted without branches: with real data, which step or
/// segment a value falls in is unpredictable, and a mispredicted branch of a binary search
/// costs more than comparing every point.
#[inline(always)]
fn count_at_or_below(points: &[(f64, f64)], x: f64) -> usize {
    if points.len() <= 16 {
        points.iter().map(|(at, _)| (*at <= x) as usize).sum()
    } else {
        points.partition_point(|(at, _)| *at <= x)
    }
}

fn flip(n: f64, invert: bool) -> f64 {
    if invert {
        1.0 - n
    } else {
        n
    }
}
