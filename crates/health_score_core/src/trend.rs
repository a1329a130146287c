//! The trend of a series of (time, score) points: first and last scores, change, least-squares
//! slope per day, range. The state is a handful of numbers that can be built in any order and
//! combined from parts, so the aggregate over it runs in parallel and as a window aggregate.

use super::error::Error;

/// Microseconds per day: times are PostgreSQL timestamps (microseconds since 2000-01-01).
const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// Scores are summed as `score × 2^-64`, so that sums of up to 2^64 scores near the largest
/// double stay finite (scores 0, 1e308, 1e308 summed as they are overflow, and the slope came
/// out NaN). A power of two: every result is what it would be unscaled, wherever that is a
/// finite double.
const Y_SCALE: f64 = 1.0 / 18_446_744_073_709_551_616.0;
const Y_UNSCALE: f64 = 18_446_744_073_709_551_616.0;

/// Running state. Every field is order-insensitive: counts, sums, minima and maxima, and the
/// regression sums of Youngs and Cramer, which PostgreSQL's own `regr_slope` keeps (stable
/// where the naive `Σxy − ΣxΣy/n` loses every digit to cancellation, as with times in days
/// since 2000 and scores near each other).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrendState {
    pub n: u64,
    pub first_at: i64,
    pub first_sum: f64,
    pub first_count: u64,
    pub last_at: i64,
    pub last_sum: f64,
    pub last_count: u64,
    pub min: f64,
    pub max: f64,
    /// Σx, Σy and the centred sums Sxx, Sxy, with x in days. Every score here (first and
    /// last sums, minimum and maximum too) is scaled by `Y_SCALE`.
    pub sx: f64,
    pub sy: f64,
    pub sxx: f64,
    pub sxy: f64,
}

/// The summary of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    pub n: u64,
    pub first_at: i64,
    pub first_score: f64,
    pub last_at: i64,
    pub last_score: f64,
    pub delta: f64,
    /// `100 × delta / first_score`; None when the first score is 0.
    pub pct_change: Option<f64>,
    /// Least-squares slope of score against time in days; None with fewer than two distinct
    /// times.
    pub slope_per_day: Option<f64>,
    pub min_score: f64,
    pub max_score: f64,
}

/// The number of fields of the serialized state, each 8 bytes.
const SERIAL_FIELDS: usize = 13;
pub const SERIAL_BYTES: usize = SERIAL_FIELDS * 8;

impl TrendState {
    /// Adds one point. Times are finite timestamps; scores finite doubles (checked here, as
    /// an infinite or NaN point would make every derived number meaningless).
    #[inline]
    pub fn add(&mut self, at: i64, score: f64) -> Result<(), Error> {
        if !score.is_finite() {
            // as PostgreSQL prints them
            let shown = if score.is_nan() {
                "NaN"
            } else if score > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            };
            return Err(Error::InvalidArgument {
                message: format!("trend: the score must be a finite number, not {shown}"),
                // NaN sorts above Infinity in PostgreSQL, so this leaves out all three
                hint: Some(
                    "leave such rows out, for example with FILTER (WHERE score > '-Infinity' AND score < 'Infinity')"
                        .into(),
                ),
            });
        }
        if at == i64::MIN || at == i64::MAX {
            return Err(Error::InvalidArgument {
                message: "trend: the time must be finite, not infinity or -infinity".into(),
                hint: Some("leave such rows out, for example with FILTER (WHERE isfinite(at))".into()),
            });
        }
        let x = at as f64 / MICROS_PER_DAY;
        let score = score * Y_SCALE;
        if self.n == 0 {
            *self = TrendState {
                n: 1,
                first_at: at,
                first_sum: score,
                first_count: 1,
                last_at: at,
                last_sum: score,
                last_count: 1,
                min: score,
                max: score,
                sx: x,
                sy: score,
                sxx: 0.0,
                sxy: 0.0,
            };
            return Ok(());
        }
        self.n += 1;
        if at < self.first_at {
            (self.first_at, self.first_sum, self.first_count) = (at, score, 1);
        } else if at == self.first_at {
            self.first_sum += score;
            self.first_count += 1;
        }
        if at > self.last_at {
            (self.last_at, self.last_sum, self.last_count) = (at, score, 1);
        } else if at == self.last_at {
            self.last_sum += score;
            self.last_count += 1;
        }
        self.min = self.min.min(score);
        self.max = self.max.max(score);
        // Youngs–Cramer, as PostgreSQL's float8_regr_accum
        let n = self.n as f64;
        self.sx += x;
        self.sy += score;
        let tmp_x = x * n - self.sx;
        let tmp_y = score * n - self.sy;
        let scale = 1.0 / (n * (n - 1.0));
        self.sxx += tmp_x * tmp_x * scale;
        self.sxy += tmp_x * tmp_y * scale;
        Ok(())
    }

    /// Merges another part of the same series (parallel workers' partial states).
    pub fn combine(&mut self, other: &TrendState) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        let (n1, n2) = (self.n as f64, other.n as f64);
        let n = n1 + n2;
        // as PostgreSQL's float8_regr_combine
        let dx = self.sx / n1 - other.sx / n2;
        let dy = self.sy / n1 - other.sy / n2;
        self.sxx += other.sxx + n1 * n2 * dx * dx / n;
        self.sxy += other.sxy + n1 * n2 * dx * dy / n;
        self.sx += other.sx;
        self.sy += other.sy;
        self.n += other.n;
        if other.first_at < self.first_at {
            (self.first_at, self.first_sum, self.first_count) = (other.first_at, other.first_sum, other.first_count);
        } else if other.first_at == self.first_at {
            self.first_sum += other.first_sum;
            self.first_count += other.first_count;
        }
        if other.last_at > self.last_at {
            (self.last_at, self.last_sum, self.last_count) = (other.last_at, other.last_sum, other.last_count);
        } else if other.last_at == self.last_at {
            self.last_sum += other.last_sum;
            self.last_count += other.last_count;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The summary; None for an empty series.
    pub fn finish(&self) -> Option<Trend> {
        if self.n == 0 {
            return None;
        }
        let first_scaled = self.first_sum / self.first_count as f64;
        let last_scaled = self.last_sum / self.last_count as f64;
        let (first_score, last_score) = (first_scaled * Y_UNSCALE, last_scaled * Y_UNSCALE);
        // beyond the largest double (from scores far apart in sign): infinite, never NaN
        let delta = (last_scaled - first_scaled) * Y_UNSCALE;
        let slope = (self.first_at != self.last_at && self.sxx > 0.0).then(|| self.sxy / self.sxx * Y_UNSCALE);
        Some(Trend {
            n: self.n,
            first_at: self.first_at,
            first_score,
            last_at: self.last_at,
            last_score,
            delta,
            pct_change: (first_score != 0.0).then(|| 100.0 * delta / first_score),
            slope_per_day: slope,
            min_score: self.min * Y_UNSCALE,
            max_score: self.max * Y_UNSCALE,
        })
    }

    pub fn to_bytes(&self) -> [u8; SERIAL_BYTES] {
        let words: [u64; SERIAL_FIELDS] = [
            self.n,
            self.first_at as u64,
            self.first_sum.to_bits(),
            self.first_count,
            self.last_at as u64,
            self.last_sum.to_bits(),
            self.last_count,
            self.min.to_bits(),
            self.max.to_bits(),
            self.sx.to_bits(),
            self.sy.to_bits(),
            self.sxx.to_bits(),
            self.sxy.to_bits(),
        ];
        let mut out = [0u8; SERIAL_BYTES];
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<TrendState> {
        if bytes.len() != SERIAL_BYTES {
            return None;
        }
        let mut w = [0u64; SERIAL_FIELDS];
        for (word, chunk) in w.iter_mut().zip(bytes.chunks_exact(8)) {
            *word = u64::from_le_bytes(chunk.try_into().ok()?);
        }
        Some(TrendState {
            n: w[0],
            first_at: w[1] as i64,
            first_sum: f64::from_bits(w[2]),
            first_count: w[3],
            last_at: w[4] as i64,
            last_sum: f64::from_bits(w[5]),
            last_count: w[6],
            min: f64::from_bits(w[7]),
            max: f64::from_bits(w[8]),
            sx: f64::from_bits(w[9]),
            sy: f64::from_bits(w[10]),
            sxx: f64::from_bits(w[11]),
            sxy: f64::from_bits(w[12]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_points_are_named_as_postgresql_prints_them() {
        for (score, shown) in [(f64::NAN, "NaN"), (f64::INFINITY, "Infinity"), (f64::NEG_INFINITY, "-Infinity")] {
            let err = TrendState::default().add(0, score).unwrap_err();
            assert_eq!(err.message(), format!("trend: the score must be a finite number, not {shown}"));
            assert_eq!(err.sqlstate(), "22023");
        }
        assert_eq!(TrendState::default().add(i64::MAX, 1.0).unwrap_err().sqlstate(), "22023");
    }
}

/// trend's state as one flat buffer: the state header (2 bytes), 2 zero bytes and the
/// serialized state (`TrendState::to_bytes`), which the transition function reads, updates
/// and writes back in place. PostgreSQL and Citus move it between processes as bytes (a
/// `bytea` state, which Citus can aggregate partially on its workers).
pub mod flat {
    use super::super::bytes::{state_header, StateKind};
    use super::{TrendState, SERIAL_BYTES};

    pub const LEN: usize = 4 + SERIAL_BYTES;

    /// The state in `buf`; None unless `buf` is one.
    pub fn read(buf: &[u8]) -> Option<TrendState> {
        if buf.len() != LEN || buf[..2] != state_header(StateKind::FlatTrend) {
            return None;
        }
        TrendState::from_bytes(&buf[4..])
    }

    /// Writes `state` into `buf` (`LEN` bytes).
    pub fn write(state: &TrendState, buf: &mut [u8]) {
        buf[..2].copy_from_slice(&state_header(StateKind::FlatTrend));
        buf[2..4].fill(0);
        buf[4..].copy_from_slice(&state.to_bytes());
    }
}
