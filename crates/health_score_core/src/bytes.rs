//! The aggregates' serialized partial states: one scheme for all of them. A state is a header
//! of two bytes, the format version and the state's kind, then the state's own little-endian
//! values front to back; reading stops with None past the end (a corrupt state is an error
//! for the caller to raise, never a panic).
//!
//! The states travel between the processes of one parallel query (and, for a distributed
//! aggregate, between servers of one version): a new layout raises `STATE_FORMAT`, so that a
//! state of another layout is refused by its header instead of being misread.

/// The layout version of every serialized state.
pub const STATE_FORMAT: u8 = 1;

/// The aggregates with a partial state, as the header names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StateKind {
    ScoreAgg = 1,
    Trend = 2,
    Auc = 3,
    Backtest = 4,
    Fit = 5,
    Parent = 6,
    FitShapes = 7,
    Suggest = 8,
    /// auc's state as one flat buffer (`auc::flat`).
    FlatAuc = 9,
    /// trend's state as one flat buffer (`trend::flat`).
    FlatTrend = 10,
    /// score_agg's state as one flat buffer (`src/pg/score_agg.rs`).
    FlatScoreAgg = 11,
}

/// The header a state of `kind` starts with.
pub fn state_header(kind: StateKind) -> [u8; 2] {
    [STATE_FORMAT, kind as u8]
}

/// The state's own bytes after a header of this format and `kind`; None for any other header.
pub fn state_payload(bytes: &[u8], kind: StateKind) -> Option<&[u8]> {
    match bytes {
        [format, k, payload @ ..] if *format == STATE_FORMAT && *k == kind as u8 => Some(payload),
        _ => None,
    }
}

pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader(bytes)
    }

    /// What is left to read.
    pub fn rest(&self) -> &'a [u8] {
        self.0
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    pub fn f64(&mut self) -> Option<f64> {
        self.u64().map(f64::from_bits)
    }

    /// Bytes preceded by their length as a `u32`.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::{state_header, state_payload, Reader, StateKind};

    #[test]
    fn a_state_is_read_back_only_under_its_own_header() {
        let mut bytes = state_header(StateKind::Trend).to_vec();
        bytes.extend_from_slice(b"xyz");
        assert_eq!(state_payload(&bytes, StateKind::Trend), Some(&b"xyz"[..]));
        assert_eq!(state_payload(&bytes, StateKind::Auc), None);
        bytes[0] += 1;
        assert_eq!(state_payload(&bytes, StateKind::Trend), None);
        assert_eq!(state_payload(&[], StateKind::Trend), None);
    }

    #[test]
    fn reads_in_order_and_stops_at_the_end() {
        let mut data = vec![7u8];
        data.extend_from_slice(&3u32.to_le_bytes());
        data.extend_from_slice(b"abc");
        data.extend_from_slice(&1.5f64.to_le_bytes());
        let mut r = Reader::new(&data);
        assert_eq!((r.u8(), r.bytes(), r.f64()), (Some(7), Some(&b"abc"[..]), Some(1.5)));
        assert_eq!(r.rest(), &[] as &[u8]);
        assert_eq!(r.u64(), None);
    }
}
