//! What a snapshot needs to keep of an evaluation: the segment, and each leaf's status and
//! `n`. Everything else a snapshot row shows (the score, the coverage, every group's `n`,
//! every component's points) follows from these by the model version's program, which
//! `Model::evaluate_leaves` runs again: the same code, so the same doubles, for a fraction of
//! the bytes of the per-component JSON.
//!
//! The layout, version 1: the format byte; the segment as an unsigned LEB128 number (0 the
//! base model, i + 1 override i: one byte for the first 127 overrides); then per leaf of the
//! model, in model order, a status byte (the status's code, `HAS_N` added when it has an `n`)
//! followed by `n`'s eight little-endian bytes when it has one.

use crate::bytes::Reader;
use crate::model::Model;
use crate::score::{Evaluation, NodeResult, Status};

/// The layout's version, its first byte.
pub const FORMAT: u8 = 1;

const HAS_N: u8 = 0x80;

fn code(status: Status) -> u8 {
    match status {
        Status::Ok => 0,
        Status::Invalid => 1,
        Status::Missing => 2,
        Status::Imputed => 3,
        Status::Excluded => 4,
    }
}

fn status(code: u8) -> Option<Status> {
    Some(match code {
        0 => Status::Ok,
        1 => Status::Invalid,
        2 => Status::Missing,
        3 => Status::Imputed,
        4 => Status::Excluded,
        _ => return None,
    })
}

/// The record of an evaluation of `model` in detail: its segment and per-node results
/// (`Evaluation::segment` and `nodes`, or `Scratch::nodes` after `evaluate_into::<true>`).
pub fn encode(model: &Model, segment: Option<usize>, nodes: &[NodeResult]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + 9 * model.inputs.len().max(1));
    out.push(FORMAT);
    let mut segment = segment.map_or(0, |i| i as u64 + 1);
    while segment >= 0x80 {
        out.push(segment as u8 | 0x80);
        segment >>= 7;
    }
    out.push(segment as u8);
    for (id, node) in model.nodes.iter().enumerate() {
        if !node.is_leaf() {
            continue;
        }
        let r = nodes.get(id).copied().unwrap_or(NodeResult { status: Status::Excluded, normalized: None });
        match r.normalized {
            Some(n) => {
                out.push(code(r.status) | HAS_N);
                out.extend_from_slice(&n.to_le_bytes());
            }
            None => out.push(code(r.status)),
        }
    }
    out
}

/// The evaluation a record of `model` gives back, None when the bytes are not such a record
/// (another format, a segment or leaf count the model does not have, a cut or padded record).
pub fn decode(model: &Model, bytes: &[u8]) -> Option<Evaluation> {
    let mut r = Reader::new(bytes);
    if r.u8()? != FORMAT {
        return None;
    }
    let segment = match read_leb128(&mut r)? {
        0 => None,
        i => Some(usize::try_from(i - 1).ok().filter(|&i| i < model.overrides.len())?),
    };
    let mut leaves = vec![NodeResult { status: Status::Excluded, normalized: None }; model.nodes.len()];
    for (id, node) in model.nodes.iter().enumerate() {
        if !node.is_leaf() {
            continue;
        }
        let byte = r.u8()?;
        let normalized = if byte & HAS_N != 0 { Some(r.f64()?) } else { None };
        leaves[id] = NodeResult { status: status(byte & !HAS_N)?, normalized };
    }
    if !r.rest().is_empty() {
        return None;
    }
    Some(model.evaluate_leaves(segment, &leaves))
}

/// An unsigned LEB128 number of at most ten bytes, None when cut or longer.
fn read_leb128(r: &mut Reader<'_>) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = r.u8()?;
        value |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}
