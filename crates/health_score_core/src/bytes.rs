//! Reading the aggregates' serialized states: little-endian values front to back, None past
//! the end (a corrupt state is an error for the caller to raise, never a panic).

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
    use super::Reader;

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
