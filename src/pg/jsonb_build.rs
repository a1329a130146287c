//! Writing JSONB in its binary format directly, for the per-row `components` of snapshots and
//! the drivers of each alert.
//!
//! Why: `jsonb_in` on JSON text, or PostgreSQL's `float8 → numeric` conversion (which prints
//! and re-parses every number), costs microseconds per row; writing the bytes into a reused
//! buffer costs a small fraction. The layout follows PostgreSQL 15's `jsonb.h` and
//! `convertToJsonb` exactly (containers and numerics aligned to 4 bytes from the start of the
//! value, an offset instead of a length every 32nd entry, object keys sorted by length and
//! then bytes); the tests read the results back through PostgreSQL's own functions.

const JENTRY_OFFLENMASK: u32 = 0x0FFF_FFFF;
const JENTRY_HAS_OFF: u32 = 0x8000_0000;
const JENTRY_ISSTRING: u32 = 0x0000_0000;
const JENTRY_ISNUMERIC: u32 = 0x1000_0000;
const JENTRY_ISNULL: u32 = 0x4000_0000;
const JENTRY_ISCONTAINER: u32 = 0x5000_0000;
const JB_OFFSET_STRIDE: usize = 32;
const JB_FOBJECT: u32 = 0x2000_0000;
const JB_FARRAY: u32 = 0x4000_0000;

/// The order in which an object's keys (`key(i)` for `i` in `0..n`) are stored: by length, then
/// bytes.
pub fn key_order<'k>(n: usize, key: impl Fn(usize) -> &'k str) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        let (ka, kb) = (key(a), key(b));
        ka.len().cmp(&kb.len()).then_with(|| ka.as_bytes().cmp(kb.as_bytes()))
    });
    order
}

/// Starts a JSONB datum in `buf` (cleared): its 4-byte varlena header, to be set by `finish`.
pub fn start(buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&[0; 4]);
}

/// Sets the varlena header once the value is written.
pub fn finish(buf: &mut [u8]) {
    let total = buf.len() as u32;
    buf[..4].copy_from_slice(&(total << 2).to_ne_bytes()); // SET_VARSIZE (4-byte header)
}

fn pad_to_int(buf: &mut Vec<u8>) -> u32 {
    let pad = (4 - buf.len() % 4) % 4;
    buf.resize(buf.len() + pad, 0);
    pad as u32
}

/// The JEntries of one container, filled in order: each entry holds its value's length, or
/// every `JB_OFFSET_STRIDE`th the end offset of the values so far.
struct Entries {
    at: usize,
    total: u32,
}

impl Entries {
    fn set(&mut self, buf: &mut [u8], i: usize, meta: u32) {
        self.total += meta & JENTRY_OFFLENMASK;
        let meta = if i.is_multiple_of(JB_OFFSET_STRIDE) {
            (meta & !JENTRY_OFFLENMASK) | self.total | JENTRY_HAS_OFF
        } else {
            meta
        };
        buf[self.at + 4 * i..self.at + 4 * i + 4].copy_from_slice(&meta.to_ne_bytes());
    }
}

/// Starts a container (`header` with its entry count) with room for `entries` JEntries.
fn start_container(buf: &mut Vec<u8>, header: u32, entries: usize) -> Entries {
    pad_to_int(buf);
    buf.extend_from_slice(&header.to_ne_bytes());
    let at = buf.len();
    buf.resize(at + 4 * entries, 0);
    Entries { at, total: 0 }
}

/// Appends an object whose keys (unique) are `key(i)` in the stored order `order` (from
/// `key_order`); `value(buf, i)` appends the value of `key(i)` and returns its JEntry. Returns
/// the object's JEntry.
pub fn write_object<'k>(
    buf: &mut Vec<u8>,
    key: impl Fn(usize) -> &'k str,
    order: &[usize],
    mut value: impl FnMut(&mut Vec<u8>, usize) -> u32,
) -> u32 {
    let base = buf.len();
    let n = order.len();
    let mut entries = start_container(buf, JB_FOBJECT | n as u32, 2 * n);
    for (i, &k) in order.iter().enumerate() {
        let name = key(k);
        buf.extend_from_slice(name.as_bytes());
        entries.set(buf, i, JENTRY_ISSTRING | name.len() as u32);
    }
    for (i, &k) in order.iter().enumerate() {
        let meta = value(buf, k);
        entries.set(buf, n + i, meta);
    }
    JENTRY_ISCONTAINER | (buf.len() - base) as u32
}

/// Appends an array of `n` elements; `value(buf, i)` appends element `i` and returns its
/// JEntry. Returns the array's JEntry.
pub fn write_array(buf: &mut Vec<u8>, n: usize, mut value: impl FnMut(&mut Vec<u8>, usize) -> u32) -> u32 {
    let base = buf.len();
    let mut entries = start_container(buf, JB_FARRAY | n as u32, n);
    for i in 0..n {
        let meta = value(buf, i);
        entries.set(buf, i, meta);
    }
    JENTRY_ISCONTAINER | (buf.len() - base) as u32
}

/// Appends a string (NULL for None); returns its JEntry.
pub fn write_string(buf: &mut Vec<u8>, s: Option<&str>) -> u32 {
    match s {
        Some(s) => {
            buf.extend_from_slice(s.as_bytes());
            JENTRY_ISSTRING | s.len() as u32
        }
        None => JENTRY_ISNULL,
    }
}

/// Appends a number (NULL for None or a non-finite double); returns its JEntry.
pub fn write_number(buf: &mut Vec<u8>, x: Option<f64>) -> u32 {
    match x {
        Some(x) if x.is_finite() => {
            let pad = pad_to_int(buf);
            let start = buf.len();
            write_numeric(buf, x);
            JENTRY_ISNUMERIC | (pad + (buf.len() - start) as u32)
        }
        _ => JENTRY_ISNULL,
    }
}

const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_SHORT: u16 = 0x8000;
const NUMERIC_SHORT_SIGN_MASK: u16 = 0x2000;
const NUMERIC_SHORT_DSCALE_SHIFT: u16 = 7;
const NUMERIC_SHORT_WEIGHT_SIGN_MASK: u16 = 0x0040;
const NUMERIC_SHORT_WEIGHT_MASK: u16 = 0x003F;

/// Appends a `numeric` varlena (4-byte header) of a finite double's shortest decimal form.
fn write_numeric(buf: &mut Vec<u8>, x: f64) {
    let d = Decimal::of(x);
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    if d.dscale <= 63 && (-64..=63).contains(&d.weight) {
        let mut header = NUMERIC_SHORT
            | ((d.dscale as u16) << NUMERIC_SHORT_DSCALE_SHIFT)
            | (d.weight as u16 & NUMERIC_SHORT_WEIGHT_MASK);
        if d.negative {
            header |= NUMERIC_SHORT_SIGN_MASK;
        }
        if d.weight < 0 {
            header |= NUMERIC_SHORT_WEIGHT_SIGN_MASK;
        }
        buf.extend_from_slice(&header.to_ne_bytes());
    } else {
        let sign_dscale = (if d.negative { NUMERIC_NEG } else { 0 }) | (d.dscale as u16 & 0x3FFF);
        buf.extend_from_slice(&sign_dscale.to_ne_bytes());
        buf.extend_from_slice(&(d.weight as i16).to_ne_bytes());
    }
    for g in d.groups() {
        buf.extend_from_slice(&g.to_ne_bytes());
    }
    let total = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&(total << 2).to_ne_bytes());
}

/// A finite double as `numeric` stores it: the sign, base-10000 digit groups without leading
/// or trailing zero groups, the weight (power of 10000) of the first group, and the display
/// scale (the decimals of the shortest round-trip form).
#[derive(Debug, PartialEq)]
pub struct Decimal {
    pub negative: bool,
    /// At most 17 significant digits span at most 6 groups.
    digits: [i16; 6],
    count: usize,
    pub weight: i32,
    pub dscale: usize,
}

impl Decimal {
    pub fn groups(&self) -> &[i16] {
        &self.digits[..self.count]
    }

    pub fn of(x: f64) -> Decimal {
        let zero = Decimal { negative: false, digits: [0; 6], count: 0, weight: 0, dscale: 0 };
        if x == 0.0 || !x.is_finite() {
            return zero;
        }
        // the shortest round-trip digits as x = m × 10^e, straight from Ryū (formatting them as
        // text and parsing that back was most of a snapshot row's time)
        let decimal = ryu_floating_decimal::d2d(x.abs());
        Decimal::from_parts(x < 0.0, decimal.mantissa, decimal.exponent)
    }

    fn from_parts(negative: bool, mut m: u64, mut e: i32) -> Decimal {
        let zero = Decimal { negative: false, digits: [0; 6], count: 0, weight: 0, dscale: 0 };
        if m == 0 {
            return zero;
        }
        while m.is_multiple_of(10) {
            m /= 10;
            e += 1;
        }
        // base-10000 groups from the lowest, whose power of ten is the multiple of 4 at or below e
        let shift = e.rem_euclid(4) as u32;
        let mut low_first = [0i16; 6];
        // the lowest group holds 4 − shift digits of m; constant divisors compile to multiplies
        let (low, high) = match shift {
            0 => (m % 10_000, m / 10_000),
            1 => (m % 1_000 * 10, m / 1_000),
            2 => (m % 100 * 100, m / 100),
            _ => (m % 10 * 1_000, m / 10),
        };
        low_first[0] = low as i16;
        m = high;
        let mut count = 1;
        while m > 0 {
            low_first[count] = (m % 10_000) as i16;
            m /= 10_000;
            count += 1;
        }
        let mut out = Decimal {
            negative,
            digits: [0; 6],
            count,
            weight: (e - shift as i32) / 4 + count as i32 - 1,
            dscale: (-e).max(0) as usize,
        };
        for k in 0..count {
            out.digits[k] = low_first[count - 1 - k];
        }
        out
    }
}

#[cfg(test)]
mod unit {
    use super::Decimal;

    fn parts(x: f64) -> (bool, Vec<i16>, i32, usize) {
        let d = Decimal::of(x);
        (d.negative, d.groups().to_vec(), d.weight, d.dscale)
    }

    /// The digits as `ryu` prints them, parsed back: the reference for `d2d`'s.
    fn of_text(x: f64) -> Decimal {
        let mut ryu_buf = ryu::Buffer::new();
        let text = ryu_buf.format_finite(x.abs());
        let (mantissa, exponent) = text.split_once('e').unwrap_or((text, "0"));
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let m: u64 = format!("{int}{frac}").parse().unwrap();
        let e: i32 = exponent.parse::<i32>().unwrap() - frac.len() as i32;
        Decimal::from_parts(x < 0.0 && m != 0, m, e)
    }

    #[test]
    fn digits_equal_ryus_printed_ones() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for i in 0..200_000u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // every bit pattern, and values like the scores' (0 to 100, few digits or many)
            let x = match i % 3 {
                0 => f64::from_bits(seed),
                1 => (seed >> 11) as f64 / (1u64 << 53) as f64 * 100.0,
                _ => ((seed % 100_000) as f64) / 1000.0,
            };
            if x.is_finite() {
                assert_eq!(Decimal::of(x), of_text(x), "{x:e}");
            }
        }
    }

    #[test]
    fn numbers_become_base_10000_groups() {
        assert_eq!(parts(0.0), (false, vec![], 0, 0));
        assert_eq!(parts(-0.0), (false, vec![], 0, 0));
        assert_eq!(parts(1.0), (false, vec![1], 0, 0));
        assert_eq!(parts(12.34), (false, vec![12, 3400], 0, 2));
        assert_eq!(parts(-12345.5), (true, vec![1, 2345, 5000], 1, 1));
        assert_eq!(parts(100.0), (false, vec![100], 0, 0));
        assert_eq!(parts(10000.0), (false, vec![1], 1, 0));
        assert_eq!(parts(0.00012), (false, vec![1, 2000], -1, 5));
        assert_eq!(parts(1e-7), (false, vec![10], -2, 7));
        assert_eq!(parts(1.5e22), (false, vec![150], 5, 0));
        assert_eq!(parts(0.1 + 0.2), (false, vec![3000, 0, 0, 0, 4000], -1, 17));
        assert_eq!(parts(1e-300), (false, vec![1], -75, 300));
        assert_eq!(parts(33.333333333333336), (false, vec![33, 3333, 3333, 3333, 3360], 0, 15));
    }
}
