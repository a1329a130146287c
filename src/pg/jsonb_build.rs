//! Writing JSONB in its binary format directly, for the per-row `components` of snapshots.
//!
//! Why: `jsonb_in` on JSON text, or PostgreSQL's `float8 → numeric` conversion (which prints
//! and re-parses every number), costs microseconds per row; writing the bytes costs a small
//! fraction. The layout follows PostgreSQL 15's `jsonb.h` and `convertToJsonb` exactly
//! (containers and numerics aligned to 4 bytes from the start of the value, an offset instead
//! of a length every 32nd entry, object keys sorted by length and then bytes); the tests read
//! the results back through PostgreSQL's own functions.

/// A JSON value to write: only what snapshots need.
pub enum JsonbValue<'a> {
    Null,
    /// A finite double, written as the shortest decimal that reads back as the same double.
    Number(f64),
    /// Pairs with unique keys, in any order.
    Object(Vec<(&'a str, JsonbValue<'a>)>),
}

const JENTRY_OFFLENMASK: u32 = 0x0FFF_FFFF;
const JENTRY_HAS_OFF: u32 = 0x8000_0000;
const JENTRY_ISSTRING: u32 = 0x0000_0000;
const JENTRY_ISNUMERIC: u32 = 0x1000_0000;
const JENTRY_ISNULL: u32 = 0x4000_0000;
const JENTRY_ISCONTAINER: u32 = 0x5000_0000;
const JB_OFFSET_STRIDE: usize = 32;
const JB_FOBJECT: u32 = 0x2000_0000;

/// The whole JSONB datum (4-byte varlena header included) of an object.
pub fn jsonb_bytes(value: &JsonbValue<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 4];
    write_value(&mut buf, value);
    let total = buf.len() as u32;
    buf[..4].copy_from_slice(&(total << 2).to_ne_bytes()); // SET_VARSIZE (4-byte header)
    buf
}

fn pad_to_int(buf: &mut Vec<u8>) -> u32 {
    let pad = (4 - buf.len() % 4) % 4;
    buf.resize(buf.len() + pad, 0);
    pad as u32
}

/// Appends a value; returns its JEntry (type and length, padding included).
fn write_value(buf: &mut Vec<u8>, value: &JsonbValue<'_>) -> u32 {
    match value {
        JsonbValue::Null => JENTRY_ISNULL,
        JsonbValue::Number(x) if x.is_finite() => {
            let pad = pad_to_int(buf);
            let start = buf.len();
            write_numeric(buf, *x);
            JENTRY_ISNUMERIC | (pad + (buf.len() - start) as u32)
        }
        JsonbValue::Number(_) => JENTRY_ISNULL,
        JsonbValue::Object(pairs) => {
            let base = buf.len();
            pad_to_int(buf);
            let mut sorted: Vec<&(&str, JsonbValue<'_>)> = pairs.iter().collect();
            sorted.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.as_bytes().cmp(b.0.as_bytes())));
            let n = sorted.len();
            buf.extend_from_slice(&(JB_FOBJECT | n as u32).to_ne_bytes());
            let entries_at = buf.len();
            buf.resize(entries_at + 8 * n, 0);
            let mut total = 0u32;
            let mut set_entry = |buf: &mut Vec<u8>, i: usize, meta: u32| {
                total += meta & JENTRY_OFFLENMASK;
                let meta =
                    if i % JB_OFFSET_STRIDE == 0 { (meta & !JENTRY_OFFLENMASK) | total | JENTRY_HAS_OFF } else { meta };
                buf[entries_at + 4 * i..entries_at + 4 * i + 4].copy_from_slice(&meta.to_ne_bytes());
            };
            for (i, (key, _)) in sorted.iter().enumerate() {
                buf.extend_from_slice(key.as_bytes());
                set_entry(buf, i, JENTRY_ISSTRING | key.len() as u32);
            }
            for (i, (_, v)) in sorted.iter().enumerate() {
                let meta = write_value(buf, v);
                set_entry(buf, n + i, meta);
            }
            JENTRY_ISCONTAINER | (buf.len() - base) as u32
        }
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
    let (negative, digits, weight, dscale) = decimal_groups(x);
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    let short = dscale <= 63 && (-64..=63).contains(&weight);
    if short {
        let mut header = NUMERIC_SHORT
            | ((dscale as u16) << NUMERIC_SHORT_DSCALE_SHIFT)
            | (weight as u16 & NUMERIC_SHORT_WEIGHT_MASK);
        if negative {
            header |= NUMERIC_SHORT_SIGN_MASK;
        }
        if weight < 0 {
            header |= NUMERIC_SHORT_WEIGHT_SIGN_MASK;
        }
        buf.extend_from_slice(&header.to_ne_bytes());
    } else {
        let sign_dscale = (if negative { NUMERIC_NEG } else { 0 }) | (dscale as u16 & 0x3FFF);
        buf.extend_from_slice(&sign_dscale.to_ne_bytes());
        buf.extend_from_slice(&(weight as i16).to_ne_bytes());
    }
    for d in &digits {
        buf.extend_from_slice(&d.to_ne_bytes());
    }
    let total = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&(total << 2).to_ne_bytes());
}

/// A finite double as `numeric` stores it: sign, base-10000 digits without leading or
/// trailing zero groups, the weight of the first group, and the display scale (the number of
/// decimals of the shortest round-trip form).
pub fn decimal_groups(x: f64) -> (bool, Vec<i16>, i32, usize) {
    // Rust prints the shortest round-trip form, in positional notation (never an exponent)
    let text = format!("{}", x.abs());
    let (int_part, frac_part) = text.split_once('.').unwrap_or((text.as_str(), ""));
    let int_part = int_part.trim_start_matches('0');
    let dscale = frac_part.len();
    // groups: the integer part from the right, the fraction from the left, zero-padded
    let int_groups = int_part.len().div_ceil(4);
    let mut digits_text = "0".repeat(int_groups * 4 - int_part.len());
    digits_text.push_str(int_part);
    digits_text.push_str(frac_part);
    digits_text.push_str(&"0".repeat((4 - frac_part.len() % 4) % 4));
    let mut groups: Vec<i16> =
        digits_text.as_bytes().chunks(4).map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + (d - b'0') as i16)).collect();
    let mut weight = int_groups as i32 - 1;
    let leading = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..leading);
    weight -= leading as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        return (false, groups, 0, dscale);
    }
    (x < 0.0, groups, weight, dscale)
}

#[cfg(test)]
mod unit {
    use super::decimal_groups;

    #[test]
    fn numbers_become_base_10000_groups() {
        assert_eq!(decimal_groups(0.0), (false, vec![], 0, 0));
        assert_eq!(decimal_groups(-0.0), (false, vec![], 0, 0));
        assert_eq!(decimal_groups(12.34), (false, vec![12, 3400], 0, 2));
        assert_eq!(decimal_groups(-12345.5), (true, vec![1, 2345, 5000], 1, 1));
        assert_eq!(decimal_groups(100.0), (false, vec![100], 0, 0));
        assert_eq!(decimal_groups(10000.0), (false, vec![1], 1, 0));
        assert_eq!(decimal_groups(0.00012), (false, vec![1, 2000], -1, 5));
        assert_eq!(decimal_groups(0.1 + 0.2), (false, vec![3000, 0, 0, 0, 4000], -1, 17));
        let (_, g, w, s) = decimal_groups(1e-300);
        assert_eq!((g, w, s), (vec![1], -75, 300));
    }
}
