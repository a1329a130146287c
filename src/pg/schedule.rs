//! The pg_cron jobs `health_score.schedule` registers (their SQL is in
//! `sql/schedule.sql`) live in pg_cron's table, which `DROP EXTENSION health_score` does not
//! touch: left there, they would fail every time they run. An event trigger on `DROP
//! EXTENSION` removes them first. Which extensions a DROP names is in its parse tree, which
//! PL/pgSQL cannot read: this parses the statement's text for it. (The event trigger itself
//! is PL/pgSQL, so that a missing library, after a package's removal, never blocks a drop.)

use std::ffi::{CStr, CString};

use pgrx::pg_sys;

use crate::core::Error;

use super::{c_symbol, raising, TextArg};

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!("../../sql/schedule.sql", name = "schedule", requires = ["roles", "history"]);

/// The extensions named by the `DROP EXTENSION` statements among `stmts` (a raw parse).
unsafe fn dropped_extensions(stmts: *mut pg_sys::List) -> Vec<String> {
    let mut names = Vec::new();
    if stmts.is_null() {
        return names;
    }
    for i in 0..(*stmts).length as usize {
        let raw = (*(*stmts).elements.add(i)).ptr_value as *mut pg_sys::RawStmt;
        let tree = if raw.is_null() { std::ptr::null_mut() } else { (*raw).stmt };
        if tree.is_null() || (*tree).type_ != pg_sys::NodeTag::T_DropStmt {
            continue;
        }
        let drop = tree as *mut pg_sys::DropStmt;
        let objects = (*drop).objects;
        if (*drop).removeType != pg_sys::ObjectType::OBJECT_EXTENSION || objects.is_null() {
            continue;
        }
        for j in 0..(*objects).length as usize {
            let node = (*(*objects).elements.add(j)).ptr_value as *mut pg_sys::Node;
            if !node.is_null() && (*node).type_ == pg_sys::NodeTag::T_String {
                names.push(CStr::from_ptr((*(node as *mut pg_sys::String)).sval).to_string_lossy().into_owned());
            }
        }
    }
    names
}

// _drop_extension_names(query text) RETURNS text[]: the extensions the DROP EXTENSION
// statements of the query name (empty for any other statement)
#[pgrx::pg_extern(sql = false)]
fn drop_extension_names(query: TextArg) -> Vec<String> {
    let query = raising(|| {
        CString::new(query.0).map_err(|_| Error::InvalidArgument {
            message: "_drop_extension_names: the query contains a NUL byte".into(),
            hint: None,
        })
    });
    unsafe { dropped_extensions(pg_sys::raw_parser(query.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT)) }
}
c_symbol!(hs_drop_extension_names, pg_finfo_hs_drop_extension_names => drop_extension_names_wrapper);
