//! ROC AUC of a health score against churn, in the Mann–Whitney form where a *low* score
//! predicts churn: P(score of a random churned account < score of a random retained one) +
//! ½·P(tie). Counted with integers over sorted scores, so the result does not depend on
//! the order of the rows or on how they were split among parallel workers.

use super::error::{reserve, Error};
use super::interrupts::Ticker;

/// The most rows one AUC keeps (8 bytes each; a parallel worker's part must also fit in one
/// serialized `bytea`, at most 1 GB).
pub const MAX_ROWS: usize = 100_000_000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AucState {
    pub churned: Vec<f64>,
    pub retained: Vec<f64>,
}

fn too_many() -> Error {
    Error::LimitExceeded {
        message: format!("auc: more than {MAX_ROWS} rows in one group"),
        hint: "compute the AUC of a sample, or of smaller groups".into(),
    }
}

impl AucState {
    /// Adds one account; a NaN or infinite score is ignored, as SQL NULLs are by the caller.
    #[inline]
    pub fn add(&mut self, score: f64, churned: bool) -> Result<(), Error> {
        if !score.is_finite() {
            return Ok(());
        }
        if self.churned.len() + self.retained.len() >= MAX_ROWS {
            return Err(too_many());
        }
        // −0 and 0 are the same score
        let score = if score == 0.0 { 0.0 } else { score };
        let class = if churned { &mut self.churned } else { &mut self.retained };
        reserve(class, 1, "auc")?;
        class.push(score);
        Ok(())
    }

    pub fn combine(&mut self, other: &AucState) -> Result<(), Error> {
        if self.churned.len() + self.retained.len() + other.churned.len() + other.retained.len() > MAX_ROWS {
            return Err(too_many());
        }
        reserve(&mut self.churned, other.churned.len(), "auc")?;
        reserve(&mut self.retained, other.retained.len(), "auc")?;
        self.churned.extend_from_slice(&other.churned);
        self.retained.extend_from_slice(&other.retained);
        Ok(())
    }

    /// The AUC; None when either class is empty. Sorts the state in place.
    pub fn finish(&mut self) -> Option<f64> {
        if self.churned.is_empty() || self.retained.is_empty() {
            return None;
        }
        // a sort of 100 million scores takes seconds: it asks whether to stop as it goes
        let mut ticker = Ticker::default();
        let mut compare = |a: &f64, b: &f64| {
            ticker.tick();
            a.total_cmp(b)
        };
        self.churned.sort_unstable_by(&mut compare);
        self.retained.sort_unstable_by(&mut compare);
        // for each churned score c: retained scores above it (concordant) and equal to it (ties)
        let (mut below_or_equal, mut below) = (0usize, 0usize);
        let (mut concordant, mut ties) = (0u128, 0u128);
        let r = &self.retained;
        for &c in &self.churned {
            ticker.tick();
            while below < r.len() && r[below] < c {
                below += 1;
            }
            below_or_equal = below_or_equal.max(below);
            while below_or_equal < r.len() && r[below_or_equal] <= c {
                below_or_equal += 1;
            }
            concordant += (r.len() - below_or_equal) as u128;
            ties += (below_or_equal - below) as u128;
        }
        let pairs = self.churned.len() as u128 * r.len() as u128;
        Some((2 * concordant + ties) as f64 / (2 * pairs) as f64)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        reserve(&mut out, 16 + 8 * (self.churned.len() + self.retained.len()), "auc")?;
        out.extend_from_slice(&(self.churned.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.retained.len() as u64).to_le_bytes());
        for v in self.churned.iter().chain(&self.retained) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<AucState> {
        let word = |i: usize| bytes.get(8 * i..8 * i + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
        let (nc, nr) = (word(0)? as usize, word(1)? as usize);
        if bytes.len() != 16 + 8 * (nc.checked_add(nr)?) {
            return None;
        }
        let value = |i: usize| word(2 + i).map(f64::from_bits);
        // the sizes are checked against the bytes above; the memory may still be missing
        let (mut churned, mut retained) = (Vec::new(), Vec::new());
        churned.try_reserve_exact(nc).ok()?;
        retained.try_reserve_exact(nr).ok()?;
        for i in 0..nc {
            churned.push(value(i)?);
        }
        for i in nc..nc + nr {
            retained.push(value(i)?);
        }
        Some(AucState { churned, retained })
    }
}
