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

/// auc's state as one flat buffer: the form PostgreSQL and Citus move between processes and
/// servers as bytes (a `bytea` state, which Citus can aggregate partially on its workers), and
/// which the transition function fills in place. The layout: the state header (2 bytes) and 2
/// zero bytes, the numbers of churned and retained scores and the capacity (u64 each), then
/// `capacity` scores: the churned from the front, the retained from the back. The scores
/// start 28 bytes in, 8-byte aligned after a varlena's 4-byte header.
pub mod flat {
    use super::super::bytes::{state_header, StateKind};
    use super::super::error::Error;
    use super::{too_many, AucState, MAX_ROWS};

    pub const HEAD: usize = 28;

    /// The buffer's length for `capacity` scores.
    pub fn len_for(capacity: usize) -> usize {
        HEAD + 8 * capacity
    }

    #[inline(always)]
    fn word(buf: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
    }

    #[inline(always)]
    fn set_word(buf: &mut [u8], at: usize, v: u64) {
        buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// An empty state in `buf` (`len_for(capacity)` bytes).
    pub fn init(buf: &mut [u8]) {
        let capacity = (buf.len() - HEAD) / 8;
        buf[..2].copy_from_slice(&state_header(StateKind::FlatAuc));
        buf[2..4].fill(0);
        set_word(buf, 4, 0);
        set_word(buf, 12, 0);
        set_word(buf, 20, capacity as u64);
    }

    /// (churned, retained, capacity) of a well-formed state; None for anything else.
    #[inline]
    pub fn counts(buf: &[u8]) -> Option<(usize, usize, usize)> {
        if buf.len() < HEAD || buf[..2] != state_header(StateKind::FlatAuc) {
            return None;
        }
        let (nc, nr, cap) = (word(buf, 4) as usize, word(buf, 12) as usize, word(buf, 20) as usize);
        let fits = cap <= MAX_ROWS && nc.checked_add(nr).is_some_and(|n| n <= cap) && buf.len() == len_for(cap);
        fits.then_some((nc, nr, cap))
    }

    #[inline(always)]
    fn score(buf: &[u8], i: usize) -> f64 {
        f64::from_bits(word(buf, HEAD + 8 * i))
    }

    /// Adds one account, as `AucState::add` does; `Ok(false)` when the buffer is full (grow it
    /// with `copy_into` and add again). `buf` must be well-formed (`counts`).
    #[inline]
    pub fn push(buf: &mut [u8], score: f64, churned: bool) -> Result<bool, Error> {
        let (nc, nr, cap) = (word(buf, 4) as usize, word(buf, 12) as usize, word(buf, 20) as usize);
        push_counted(buf, (nc, nr, cap), score, churned)
    }

    /// `push` on a state whose `counts` the caller has just read.
    #[inline(always)]
    pub fn push_counted(
        buf: &mut [u8],
        (nc, nr, cap): (usize, usize, usize),
        score: f64,
        churned: bool,
    ) -> Result<bool, Error> {
        if !score.is_finite() {
            return Ok(true);
        }
        if nc + nr >= MAX_ROWS {
            return Err(too_many());
        }
        if nc + nr == cap {
            return Ok(false);
        }
        let score = if score == 0.0 { 0.0 } else { score };
        if churned {
            set_word(buf, HEAD + 8 * nc, score.to_bits());
            set_word(buf, 4, nc as u64 + 1);
        } else {
            set_word(buf, HEAD + 8 * (cap - 1 - nr), score.to_bits());
            set_word(buf, 12, nr as u64 + 1);
        }
        Ok(true)
    }

    /// The capacity for a state holding `rows` scores and growing: twice as many, at least 16,
    /// at most `MAX_ROWS`.
    pub fn capacity_for(rows: usize) -> usize {
        rows.saturating_mul(2).clamp(16, MAX_ROWS.max(rows))
    }

    /// Adds the scores of the well-formed state `from` to `to`; `Ok(false)` (and `to` as it
    /// was) when they do not all fit.
    pub fn append(to: &mut [u8], from: &[u8]) -> Result<bool, Error> {
        let corrupt = || Error::InvalidArgument { message: "auc: corrupt state".into(), hint: None };
        let ((nc, nr, cap), (tc, tr, tcap)) = (counts(from).ok_or_else(corrupt)?, counts(to).ok_or_else(corrupt)?);
        if tc + tr + nc + nr > MAX_ROWS {
            return Err(too_many());
        }
        if tc + tr + nc + nr > tcap {
            return Ok(false);
        }
        // each class is one run of bytes: the churned at the front, the retained at the back
        to[HEAD + 8 * tc..HEAD + 8 * (tc + nc)].copy_from_slice(&from[HEAD..HEAD + 8 * nc]);
        to[HEAD + 8 * (tcap - tr - nr)..HEAD + 8 * (tcap - tr)]
            .copy_from_slice(&from[HEAD + 8 * (cap - nr)..HEAD + 8 * cap]);
        set_word(to, 4, (tc + nc) as u64);
        set_word(to, 12, (tr + nr) as u64);
        Ok(true)
    }

    /// Writes `from`'s scores and then `more`'s (well-formed states) into `to`, a buffer of a
    /// capacity that holds them all.
    pub fn copy_into(from: &[u8], more: Option<&[u8]>, to: &mut [u8]) -> Result<(), Error> {
        init(to);
        for part in std::iter::once(from).chain(more) {
            if !append(to, part)? {
                return Err(too_many());
            }
        }
        Ok(())
    }

    /// The scores of a well-formed state, for `AucState::finish` or `calibrate`.
    pub fn state(buf: &[u8]) -> Option<AucState> {
        let (nc, nr, cap) = counts(buf)?;
        let (mut churned, mut retained) = (Vec::new(), Vec::new());
        churned.try_reserve_exact(nc).ok()?;
        retained.try_reserve_exact(nr).ok()?;
        churned.extend((0..nc).map(|i| score(buf, i)));
        retained.extend((0..nr).map(|i| score(buf, cap - 1 - i)));
        Some(AucState { churned, retained })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_flat_state_grows_merges_and_gives_the_auc_of_its_scores() {
            let rows: Vec<(f64, bool)> = (0..1000)
                .map(|i| ((i * 37 % 101) as f64 - 50.0, i % 3 == 0))
                .chain([(f64::NAN, true), (-0.0, false)])
                .collect();
            let mut reference = AucState::default();
            let mut buf = vec![0u8; len_for(16)];
            init(&mut buf);
            for &(s, c) in &rows[..600] {
                reference.add(s, c).unwrap();
                if !push(&mut buf, s, c).unwrap() {
                    let (nc, nr, _) = counts(&buf).unwrap();
                    let mut bigger = vec![0u8; len_for(capacity_for(nc + nr))];
                    copy_into(&buf, None, &mut bigger).unwrap();
                    buf = bigger;
                    assert!(push(&mut buf, s, c).unwrap());
                }
            }
            let mut other = vec![0u8; len_for(500)];
            init(&mut other);
            for &(s, c) in &rows[600..] {
                reference.add(s, c).unwrap();
                assert!(push(&mut other, s, c).unwrap());
            }
            let mut merged = vec![0u8; len_for(1002)];
            copy_into(&buf, Some(&other), &mut merged).unwrap();
            let mut got = state(&merged).unwrap();
            assert_eq!(got.finish(), reference.clone().finish());
            // a short buffer, another header, counts past the capacity: refused
            assert_eq!(counts(&merged[..merged.len() - 8]), None);
            let mut wrong = merged.clone();
            wrong[1] = StateKind::Auc as u8;
            assert_eq!(counts(&wrong), None);
            let mut wrong = merged.clone();
            wrong[4..12].copy_from_slice(&2000u64.to_le_bytes());
            assert_eq!(counts(&wrong), None);
        }
    }
}
