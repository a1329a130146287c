//! Aggregate states typed `bytea` that live as PostgreSQL expanded objects while the aggregate
//! runs: the Rust state itself, changed in place row after row like an `internal` one, and
//! flattened into its serialized bytes (the same bytes as the `internal` aggregates' serial
//! functions write) only where PostgreSQL needs a value: a parallel worker's partial state, or
//! Citus's `worker_partial_agg`, which sends a worker's state to the coordinator through the
//! state type's output function. Citus splits an aggregate into worker and coordinator parts
//! only when its state type is not a pseudo-type such as `internal`.
//!
//! PostgreSQL keeps a transition value the transition function returns unchanged, and keeps a
//! new read-write expanded object without copying it when the object's memory context is a
//! child of the aggregate's (`ExecAggTransReparent`, `advance_windowaggregate`, and Citus's
//! `HandleTransition` all check this), so a state costs one pointer check per row. The objects
//! of one aggregate share a memory context (`states_context`).

use std::ffi::c_void;

use pgrx::pg_sys;

use crate::core::bytes::StateKind;
use crate::core::Error;

use super::{aggregate_context, arg, bytea_bytes};

/// An aggregate state with a serialized form: what the `bytea` state functions need.
pub trait PartialState: Default + Sized + 'static {
    const KIND: StateKind;
    /// The aggregate's name in errors.
    const AGGREGATE: &'static str;
    fn merge_state(&mut self, other: &Self) -> Result<(), Error>;
    fn state_bytes(&self) -> Result<Vec<u8>, Error>;
    fn state_from_bytes(bytes: &[u8]) -> Option<Self>;
}

/// Implements `PartialState` for a state type whose `combine`, `to_bytes` and `from_bytes` are
/// its own (the same the `internal` aggregates' support functions call).
macro_rules! partial_state {
    ($state:ty, $kind:expr, $aggregate:literal) => {
        impl $crate::pg::PartialState for $state {
            const KIND: $crate::core::bytes::StateKind = $kind;
            const AGGREGATE: &'static str = $aggregate;
            fn merge_state(&mut self, other: &Self) -> Result<(), $crate::core::Error> {
                <$state>::combine(self, other)
            }
            fn state_bytes(&self) -> Result<Vec<u8>, $crate::core::Error> {
                <$state>::to_bytes(self)
            }
            fn state_from_bytes(bytes: &[u8]) -> Option<Self> {
                <$state>::from_bytes(bytes)
            }
        }
    };
}
pub(crate) use partial_state;

/// Declares the combine function `$symbol(state bytea, other bytea) → bytea` of an aggregate
/// whose `bytea` state is `$state` (a `PartialState`).
macro_rules! bytea_state_merge {
    ($state:ty, $symbol:ident, $finfo:ident) => {
        $crate::pg::v1_function!($symbol, $finfo, |fcinfo| { $crate::pg::merge_bytea_states::<$state>(fcinfo) });
    };
}
pub(crate) use bytea_state_merge;

/// Marks our objects among expanded datums (a `bytea` is never expanded by PostgreSQL itself,
/// so this only guards against a state of another of our aggregates).
const MAGIC: u32 = 0x4853_5354;

#[repr(C)]
struct Expanded<T> {
    /// First: PostgreSQL reads the object through this header.
    header: pg_sys::ExpandedObjectHeader,
    methods: pg_sys::ExpandedObjectMethods,
    reset: pg_sys::MemoryContextCallback,
    magic: u32,
    kind: u8,
    state: *mut T,
    /// The bytes `get_flat_size` computed, for `flatten_into` right after it.
    flat: *mut Vec<u8>,
}

/// 1-byte varlena header of a pointer datum (`VARATT_IS_EXTERNAL`), then its tag.
#[cfg(target_endian = "little")]
const EXTERNAL_HEADER: u8 = 0x01;
#[cfg(target_endian = "big")]
const EXTERNAL_HEADER: u8 = 0x80;
const VARTAG_EXPANDED_RO: u8 = 2;
/// PostgreSQL's `MaxAllocSize`: the largest value a datum may be.
const MAX_ALLOC_SIZE: usize = 0x3fff_ffff;
const VARTAG_EXPANDED_RW: u8 = 3;

/// The expanded object a datum points at, and whether the pointer is read-write; None for a
/// plain varlena.
unsafe fn expanded_header(d: pg_sys::Datum) -> Option<(*mut pg_sys::ExpandedObjectHeader, bool)> {
    let p = d.cast_mut_ptr::<u8>();
    if *p != EXTERNAL_HEADER {
        return None;
    }
    let tag = *p.add(1);
    if tag != VARTAG_EXPANDED_RO && tag != VARTAG_EXPANDED_RW {
        return None;
    }
    let eoh = std::ptr::read_unaligned(p.add(2) as *const *mut pg_sys::ExpandedObjectHeader);
    Some((eoh, tag == VARTAG_EXPANDED_RW))
}

/// Our state of type `T` behind a datum, with whether the datum is its read-write pointer.
unsafe fn expanded_state<T: PartialState>(d: pg_sys::Datum) -> Option<(*mut T, bool)> {
    let (eoh, rw) = expanded_header(d)?;
    let e = eoh as *mut Expanded<T>;
    ((*e).magic == MAGIC && (*e).kind == T::KIND as u8).then(|| ((*e).state, rw))
}

unsafe extern "C-unwind" fn get_flat_size<T: PartialState>(eoh: *mut pg_sys::ExpandedObjectHeader) -> pg_sys::Size {
    pgrx::pg_sys::submodules::panic::pgrx_extern_c_guard(|| {
        let e = eoh as *mut Expanded<T>;
        let mut bytes = crate::core::bytes::state_header(T::KIND).to_vec();
        match (*(*e).state).state_bytes() {
            Ok(payload) => bytes.extend_from_slice(&payload),
            Err(err) => crate::pg::raise(&err),
        }
        if bytes.len() + pg_sys::VARHDRSZ > MAX_ALLOC_SIZE {
            crate::pg::raise(&Error::LimitExceeded {
                message: format!("{}: the aggregate's state is larger than a value may be (1 GB)", T::AGGREGATE),
                hint: "aggregate fewer rows per group".into(),
            });
        }
        let size = bytes.len() + pg_sys::VARHDRSZ;
        if !(*e).flat.is_null() {
            drop(Box::from_raw((*e).flat));
        }
        (*e).flat = Box::into_raw(Box::new(bytes));
        size
    })
}

unsafe extern "C-unwind" fn flatten_into<T: PartialState>(
    eoh: *mut pg_sys::ExpandedObjectHeader,
    result: *mut c_void,
    allocated_size: pg_sys::Size,
) {
    pgrx::pg_sys::submodules::panic::pgrx_extern_c_guard(|| {
        let e = eoh as *mut Expanded<T>;
        if (*e).flat.is_null() {
            get_flat_size::<T>(eoh);
        }
        let bytes = Box::from_raw((*e).flat);
        (*e).flat = std::ptr::null_mut();
        let total = bytes.len() + pg_sys::VARHDRSZ;
        assert!(total == allocated_size, "{}: flattened state size changed", T::AGGREGATE);
        let out = result as *mut u8;
        pgrx::varlena::set_varsize_4b(out as *mut pg_sys::varlena, total as i32);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.add(pg_sys::VARHDRSZ), bytes.len());
    })
}

/// Drops the Rust state when PostgreSQL deletes the object's memory context.
unsafe extern "C-unwind" fn drop_state<T: PartialState>(arg: *mut c_void) {
    let e = arg as *mut Expanded<T>;
    if !(*e).state.is_null() {
        drop(Box::from_raw((*e).state));
        (*e).state = std::ptr::null_mut();
    }
    if !(*e).flat.is_null() {
        drop(Box::from_raw((*e).flat));
        (*e).flat = std::ptr::null_mut();
    }
}

/// The name of the memory context under an aggregate's that holds its expanded states: compared
/// by address to find it again.
static STATES_CONTEXT: &std::ffi::CStr = c"health_score aggregate states";

/// The memory context, a child of `parent` (the aggregate's), that holds the aggregate's
/// expanded states: one for all of its groups. A context per state would cost a hash
/// aggregate a walk over every group's context each time it checks its memory (quadratic in
/// the groups); one shared context is safe because PostgreSQL deletes an expanded transition
/// value itself only when a transition function returns another object in its place, which
/// these never do (they return the state they were given).
unsafe fn states_context(parent: pg_sys::MemoryContext) -> pg_sys::MemoryContext {
    let mut child = (*parent).firstchild;
    while !child.is_null() {
        if std::ptr::eq((*child).name, STATES_CONTEXT.as_ptr()) {
            return child;
        }
        child = (*child).nextchild;
    }
    // ALLOCSET_DEFAULT_SIZES: many small objects (the states live in Rust's heap)
    pg_sys::AllocSetContextCreateInternal(parent, STATES_CONTEXT.as_ptr(), 0, 8 * 1024, 8 * 1024 * 1024)
}

/// A new expanded object holding `state`, under the aggregate's memory context `parent`; its
/// read-write datum.
unsafe fn new_expanded<T: PartialState>(parent: pg_sys::MemoryContext, state: T) -> (pg_sys::Datum, *mut T) {
    let context = states_context(parent);
    let e = pg_sys::MemoryContextAllocZero(context, std::mem::size_of::<Expanded<T>>()) as *mut Expanded<T>;
    (*e).methods = pg_sys::ExpandedObjectMethods {
        get_flat_size: Some(get_flat_size::<T>),
        flatten_into: Some(flatten_into::<T>),
    };
    pg_sys::EOH_init_header(&mut (*e).header, &(*e).methods, context);
    (*e).magic = MAGIC;
    (*e).kind = T::KIND as u8;
    (*e).state = Box::into_raw(Box::new(state));
    (*e).reset = pg_sys::MemoryContextCallback {
        func: Some(drop_state::<T>),
        arg: e as *mut c_void,
        next: std::ptr::null_mut(),
    };
    pg_sys::MemoryContextRegisterResetCallback(context, &mut (*e).reset);
    (pg_sys::Datum::from((*e).header.eoh_rw_ptr.as_ptr()), (*e).state)
}

fn corrupt<T: PartialState>() -> Error {
    Error::InvalidArgument { message: format!("{}: corrupt aggregate state", T::AGGREGATE), hint: None }
}

/// A state read from its serialized bytes (a partial state from a parallel worker or a Citus
/// worker).
unsafe fn from_flat<T: PartialState>(d: pg_sys::Datum) -> Result<T, Error> {
    crate::core::bytes::state_payload(bytea_bytes(d), T::KIND).and_then(T::state_from_bytes).ok_or_else(corrupt::<T>)
}

/// The transition function's state in argument 0, to change in place: the aggregate's own
/// expanded object, or a new one in the aggregate's memory context (from a serialized state
/// when argument 0 is one); with the datum to return.
///
/// # Safety
/// `fcinfo` must be an aggregate's call whose argument 0 is its `bytea` state.
pub unsafe fn bytea_aggregate_state<T: PartialState>(
    fcinfo: pg_sys::FunctionCallInfo,
) -> Result<(pg_sys::Datum, &'static mut T), Error> {
    if let Some(d) = arg(fcinfo, 0) {
        if let Some((state, true)) = expanded_state::<T>(d) {
            return Ok((d, &mut *state));
        }
    }
    let context = aggregate_context(fcinfo, T::AGGREGATE)?;
    let state = match arg(fcinfo, 0) {
        Some(d) => match expanded_state::<T>(d) {
            // a read-only pointer (never passed to a transition function by PostgreSQL): a copy
            Some((state, false)) => T::state_from_bytes(&(*state).state_bytes()?).ok_or_else(corrupt::<T>)?,
            _ => from_flat::<T>(d)?,
        },
        None => T::default(),
    };
    let (datum, state) = new_expanded(context, state);
    Ok((datum, &mut *state))
}

/// A final function's state in argument 0: the aggregate's own object (PostgreSQL passes it
/// read-only: a final function may sort it in place, never change what it holds), or one read
/// from a serialized state; None when it is NULL.
///
/// # Safety
/// `fcinfo` must be a call whose argument 0 is the aggregate's `bytea` state; the state lives
/// as long as the aggregate's memory context.
pub unsafe fn bytea_final_state_mut<T: PartialState>(
    fcinfo: pg_sys::FunctionCallInfo,
) -> Result<Option<StateMut<T>>, Error> {
    let Some(d) = arg(fcinfo, 0) else { return Ok(None) };
    Ok(Some(match expanded_state::<T>(d) {
        Some((state, _)) => StateMut::Kept(&mut *state),
        None => StateMut::Read(Box::new(from_flat::<T>(d)?)),
    }))
}

/// A state a final function may change in place: the aggregate's own, or one it read.
pub enum StateMut<T: 'static> {
    Kept(&'static mut T),
    Read(Box<T>),
}

impl<T> std::ops::Deref for StateMut<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            StateMut::Kept(s) => s,
            StateMut::Read(s) => s,
        }
    }
}

impl<T> std::ops::DerefMut for StateMut<T> {
    fn deref_mut(&mut self) -> &mut T {
        match self {
            StateMut::Kept(s) => s,
            StateMut::Read(s) => s,
        }
    }
}

/// The combine function of a `bytea` state: adds argument 1's state (a serialized partial
/// state, or an object of the aggregate's) to argument 0's.
///
/// # Safety
/// `fcinfo` must be an aggregate's call with two `bytea` states of `T`.
pub unsafe fn merge_bytea_states<T: PartialState>(fcinfo: pg_sys::FunctionCallInfo) -> Result<pg_sys::Datum, Error> {
    let (datum, state) = bytea_aggregate_state::<T>(fcinfo)?;
    if let Some(other) = arg(fcinfo, 1) {
        match expanded_state::<T>(other) {
            Some((other, _)) => state.merge_state(&*other)?,
            None => state.merge_state(&from_flat::<T>(other)?)?,
        }
    }
    Ok(datum)
}
