//! Getting a compiled model for a call: inline JSONB or a registered name.
//!
//! Two caches keep parsing off the per-row path:
//! - per call site (`fn_extra`): the model last used there, reused without comparison when
//!   the argument is a constant of the plan, else after a byte comparison of the argument; a
//!   name is looked up again whenever the active snapshot is another one, so a registry lookup
//!   happens once per statement and call site. `fn_extra` can outlive one execution: PL/pgSQL
//!   keeps a simple expression's state for the transaction, re-evaluating it with other
//!   parameter values and after statements that register versions, so neither a parameter
//!   nor the registry is taken as fixed;
//! - per backend: compiled models keyed by the JSONB bytes themselves, so a model is parsed
//!   once per backend whatever brings it (inline, by name, any version). Keying on content
//!   means nothing to invalidate: a new or rolled-back version simply has other bytes. It
//!   holds at most `health_score.model_cache_size` of memory (64 MB by default): a model that
//!   alone would exceed it is not kept, and one that does not fit empties it first.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use pgrx::prelude::*;
use pgrx::spi::Spi;

use crate::core::{Error, Model};

use super::jsonb::JsonbRef;

/// A parsed model and the JSONB bytes it came from.
pub struct Compiled {
    pub model: Model,
    /// The jsonb value the model was parsed from, header included.
    pub bytes: Vec<u8>,
}

impl std::ops::Deref for Compiled {
    type Target = Model;
    fn deref(&self) -> &Model {
        &self.model
    }
}

/// Parsing a model this large leaves tens of megabytes freed inside the C allocator, which
/// keeps them from the system unless asked: the session would hold them for its lifetime.
const RETURN_MEMORY_AFTER_BYTES: usize = 1 << 20;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_freed_memory() {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: glibc's malloc_trim only releases free memory
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_freed_memory() {}

/// `health_score.model_cache_size`, in kB.
pub static MODEL_CACHE_SIZE: pgrx::GucSetting<i32> = pgrx::GucSetting::<i32>::new(64 * 1024);

/// Registers the settings (from `_PG_init`).
pub fn define_settings() {
    pgrx::GucRegistry::define_int_guc(
        c"health_score.model_cache_size",
        c"Memory each session may keep parsed models in, between statements.",
        c"Models are parsed once per session and kept for later statements up to this size; 0 keeps none. A model larger than this is parsed for each statement that uses it.",
        &MODEL_CACHE_SIZE,
        0,
        i32::MAX,
        pgrx::GucContext::Userset,
        pgrx::GucFlags::UNIT_KB,
    );
}

#[derive(Default)]
struct BackendCache {
    models: HashMap<u64, Rc<Compiled>>,
    /// The memory the cached models hold, approximately.
    bytes: usize,
}

thread_local! {
    // PostgreSQL backends are single-threaded processes: a thread-local is per backend.
    static BACKEND_CACHE: RefCell<BackendCache> = RefCell::new(BackendCache::default());
}

impl Compiled {
    fn cost(&self) -> usize {
        self.model.heap_bytes() + self.bytes.capacity() + std::mem::size_of::<Compiled>()
    }
}

fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// The compiled model for these JSONB bytes, parsed only when this backend has not seen them.
pub fn compile(jsonb: &JsonbRef) -> Result<Rc<Compiled>, Error> {
    let bytes = jsonb.bytes();
    let key = fingerprint(bytes);
    if let Some(hit) = BACKEND_CACHE.with(|c| c.borrow().models.get(&key).cloned()) {
        if hit.bytes == bytes {
            return Ok(hit);
        }
    }
    let json = jsonb.model_json().map_err(|fault| Error::InvalidModel(vec![fault]))?;
    let parsed = Model::parse(&json);
    drop(json);
    if bytes.len() > RETURN_MEMORY_AFTER_BYTES {
        return_freed_memory();
    }
    let compiled = Rc::new(Compiled { model: parsed?, bytes: bytes.to_vec() });
    let budget = (MODEL_CACHE_SIZE.get().max(0) as usize).saturating_mul(1024);
    let cost = compiled.cost();
    BACKEND_CACHE.with(|c| {
        let mut cache = c.borrow_mut();
        if cost > budget {
            return;
        }
        if cache.bytes + cost > budget {
            *cache = BackendCache::default();
        }
        cache.bytes += cost;
        if let Some(replaced) = cache.models.insert(key, compiled.clone()) {
            // another model with the same fingerprint
            cache.bytes -= replaced.cost();
        }
    });
    Ok(compiled)
}

const MODEL_REF_HINT: &str =
    "write 'name' for the latest version or 'name@3' for version 3 (a number from 1, without sign or leading zeros)";

/// `name` or `name@version`, the version a decimal number from 1 without sign or leading
/// zero; anything else (`churn@1@1`, `@1`, `churn@01`, `churn@+1`, ``) is 22023.
pub fn parse_model_ref(spec: &str) -> Result<(&str, Option<i32>), Error> {
    let invalid = || Error::InvalidArgument {
        message: format!("invalid model reference {}", crate::core::error::quoted_excerpt(spec)),
        hint: Some(MODEL_REF_HINT.into()),
    };
    match spec.split_once('@') {
        None if spec.is_empty() => Err(invalid()),
        None => Ok((spec, None)),
        Some((name, version)) => {
            let decimal =
                !version.is_empty() && !version.starts_with('0') && version.bytes().all(|b| b.is_ascii_digit());
            match version.parse::<i32>() {
                Ok(v) if decimal && !name.is_empty() => Ok((name, Some(v))),
                _ => Err(invalid()),
            }
        }
    }
}

/// Looks a registered model up in the statement's snapshot. The query runs under the caller's
/// search_path, so its operators and types are qualified (docs/security.md).
pub fn resolve_name(spec: &str) -> Result<Rc<Compiled>, Error> {
    let (name, version) = parse_model_ref(spec)?;
    let found =
        latest_matching(name, version, "config", |row| match row.get_datum_by_ordinal(1).map_err(spi_error)? {
            Some(d) => compile(&unsafe { JsonbRef::from_datum(d) }).map(Some),
            None => Ok(None),
        })?;
    found.ok_or_else(|| unknown_model(name, version))
}

/// The version `spec` ('name' or 'name@3') stands for now: the latest, or the one pinned.
pub fn resolve_version(spec: &str) -> Result<i32, Error> {
    let (name, version) = parse_model_ref(spec)?;
    let found = latest_matching(name, version, "version", |row| row.get::<i32>(1).map_err(spi_error))?;
    found.ok_or_else(|| unknown_model(name, version))
}

/// `column` of the highest version of `name` (of `version` when given), read by `read`; on a
/// worker of a Citus cluster whose registry `health_score.distribute` replicated
/// (`health_score_internal.model_replica`, a reference table), from the worker's own copy
/// when its registry has none. The worker reads its shard of that table directly: a query of
/// the reference table itself would be a distributed query inside the coordinator's task,
/// which Citus refuses.
fn latest_matching<T>(
    name: &str,
    version: Option<i32>,
    column: &str,
    read: impl Fn(&pgrx::spi::SpiTupleTable) -> Result<Option<T>, Error>,
) -> Result<Option<T>, Error> {
    let lookup = |registry: &str| {
        Spi::connect(|client| -> Result<Option<T>, Error> {
            let query = format!(
                "SELECT {column} FROM {registry} \
                  WHERE name OPERATOR(pg_catalog.=) $1 \
                    AND ($2::pg_catalog.int4 IS NULL OR version OPERATOR(pg_catalog.=) $2::pg_catalog.int4) \
                  ORDER BY version DESC LIMIT 1"
            );
            let table = client.select(&query, Some(1), &[name.into(), version.into()]).map_err(spi_error)?;
            if table.is_empty() {
                return Ok(None);
            }
            read(&table.first())
        })
    };
    if let Some(found) = lookup("health_score.model_versions")? {
        return Ok(Some(found));
    }
    match super::citus::registry_replica_on_worker() {
        Some(replica) => lookup(&replica),
        None => Ok(None),
    }
}

/// 42704 for a name (or version) the registry does not have, with the closest names (on a
/// Citus worker, from its copy of the coordinator's registry, or a hint that it has none).
fn unknown_model(name: &str, version: Option<i32>) -> Error {
    let on_worker = super::citus::on_worker();
    let replica = if on_worker { super::citus::registry_replica_on_worker() } else { None };
    let (suggestions, registered) = closest_names(name, replica.as_deref().unwrap_or("health_score.model_versions"));
    Error::UnknownModel {
        name: name.to_string(),
        version,
        suggestions: if version.is_some() { Vec::new() } else { suggestions },
        registered,
        on_worker_without_registry: on_worker && replica.is_none(),
    }
}

fn spi_error(e: pgrx::spi::SpiError) -> Error {
    Error::InvalidArgument { message: format!("reading the model registry failed: {e}"), hint: None }
}

/// Registered names closest in spelling to `name`, best first, and how many names there are.
fn closest_names(name: &str, registry: &str) -> (Vec<String>, usize) {
    let names: Vec<String> = Spi::connect(|client| {
        let mut out = Vec::new();
        if let Ok(table) = client.select(&format!("SELECT DISTINCT name FROM {registry}"), None, &[]) {
            for row in table {
                if let Ok(Some(n)) = row.get::<String>(1) {
                    out.push(n);
                }
            }
        }
        out
    });
    let registered = names.len();
    let wanted = name.to_lowercase();
    let wanted_chars = wanted.chars().count();
    let bound = |n: &str| (n.len().max(wanted.len()) / 2).max(2);
    let mut scored: Vec<(usize, String)> = names
        .into_iter()
        // the distance is at least the difference in length: a name far longer than any
        // registered one (names have at most 63 characters) is compared with none
        .filter(|n| n.chars().count().abs_diff(wanted_chars) <= bound(n))
        .map(|n| (edit_distance(&wanted, &n.to_lowercase()), n))
        .filter(|(d, n)| *d <= bound(n))
        .collect();
    scored.sort();
    (scored.into_iter().take(3).map(|(_, n)| n).collect(), registered)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            row[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev[b.len()]
}

/// What a call site remembers about its model argument.
#[derive(Default)]
pub struct ModelSlot {
    /// The argument's bytes (JSONB, or the name's text) and the model they gave.
    last: Option<(Vec<u8>, Rc<Compiled>)>,
    /// For a name: the registry as the active snapshot saw it when `last` was looked up.
    registry_view: Option<RegistryView>,
    /// The argument is a constant of the plan, the same in every execution: no comparison.
    constant: Option<bool>,
}

/// Which snapshot a registry lookup read: another snapshot may see other versions (a
/// version this transaction registered since, after its command counter moved on, or one
/// another transaction committed since).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RegistryView {
    xmin: pg_sys::TransactionId,
    xmax: pg_sys::TransactionId,
    curcid: pg_sys::CommandId,
}

impl RegistryView {
    /// The active snapshot's view, `None` without one (then every call looks the name up).
    pub fn current() -> Option<RegistryView> {
        // SAFETY: called in a backend; the active snapshot, when one is set, stays valid
        // while this reads it (nothing is kept)
        unsafe {
            if !super::builtins::ActiveSnapshotSet() {
                return None;
            }
            let snapshot = super::builtins::GetActiveSnapshot();
            (!snapshot.is_null()).then(|| RegistryView {
                xmin: (*snapshot).xmin,
                xmax: (*snapshot).xmax,
                curcid: (*snapshot).curcid,
            })
        }
    }
}

/// Whether argument `argno` of the call is a `Const` of the plan. PostgreSQL's
/// `get_fn_expr_arg_stable` also counts an external `Param` as stable, which holds within
/// one execution only: PL/pgSQL re-evaluates the same expression state with new values.
unsafe fn arg_is_constant(flinfo: pg_sys::FmgrInfo, argno: i32) -> bool {
    let expr = flinfo.fn_expr;
    if expr.is_null() || (*expr).type_ != pg_sys::NodeTag::T_FuncExpr {
        return false;
    }
    let args = (*expr.cast::<pg_sys::FuncExpr>()).args;
    if args.is_null() || argno < 0 || argno >= (*args).length {
        return false;
    }
    let mut arg = pg_sys::list_nth(args, argno).cast::<pg_sys::Node>();
    while !arg.is_null() && (*arg).type_ == pg_sys::NodeTag::T_RelabelType {
        arg = (*arg.cast::<pg_sys::RelabelType>()).arg.cast::<pg_sys::Node>();
    }
    !arg.is_null() && (*arg).type_ == pg_sys::NodeTag::T_Const
}

pub enum ModelArg<'a> {
    /// A jsonb model datum.
    Inline(pg_sys::Datum),
    /// A text datum naming a registered model (read only when the call site needs it).
    NamedDatum(pg_sys::Datum),
    Named(&'a str),
}

impl ModelSlot {
    /// The model for this call, from the call-site cache when the argument is unchanged (and,
    /// for a name, the snapshot too).
    ///
    /// # Safety
    /// `fcinfo` must be the current call's; `arg` its model argument.
    #[inline]
    pub unsafe fn get(
        &mut self,
        fcinfo: pg_sys::FunctionCallInfo,
        argno: i32,
        arg: ModelArg<'_>,
    ) -> Result<Rc<Compiled>, Error> {
        let constant = *self.constant.get_or_insert_with(|| arg_is_constant(*(*fcinfo).flinfo, argno));
        let compiled = match arg {
            ModelArg::Inline(datum) => {
                if let (true, Some((_, m))) = (constant, &self.last) {
                    return Ok(m.clone());
                }
                let jsonb = JsonbRef::from_datum(datum);
                if let Some((bytes, m)) = &self.last {
                    if bytes.as_slice() == jsonb.bytes() {
                        return Ok(m.clone());
                    }
                }
                let m = compile(&jsonb)?;
                self.last = Some((jsonb.bytes().to_vec(), m.clone()));
                m
            }
            ModelArg::NamedDatum(datum) => {
                let view = RegistryView::current();
                if let Some((_, m)) = &self.last {
                    if constant && view.is_some() && view == self.registry_view {
                        return Ok(m.clone());
                    }
                }
                self.named(&super::text_arg(datum), view)?
            }
            ModelArg::Named(name) => self.named(name, RegistryView::current())?,
        };
        Ok(compiled)
    }

    fn named(&mut self, name: &str, view: Option<RegistryView>) -> Result<Rc<Compiled>, Error> {
        if let Some((bytes, m)) = &self.last {
            if bytes.as_slice() == name.as_bytes() && view.is_some() && view == self.registry_view {
                return Ok(m.clone());
            }
        }
        let m = resolve_name(name)?;
        self.last = Some((name.as_bytes().to_vec(), m.clone()));
        self.registry_view = view;
        Ok(m)
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/models.rs");
}
