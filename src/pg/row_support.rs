//! Planner support for the table-row forms: `score('m', a)` with `a` a whole row is rewritten
//! at plan time into `_score_columns('m', rowtype, '{col, ...}', a.col1, a.col2, ...)` (and
//! any function whose last argument is the row likewise, the arguments before it kept).
//!
//! Why: passing a whole row makes the executor build a composite datum per row (form a tuple,
//! copy it) only for the function to take it apart again, which costs more than scoring. The
//! rewrite hands the function the columns the scan has already read. Rows that are not a
//! plain whole-row reference of a named row type of the same query level (`ROW(...)` of
//! anonymous type, a `record` variable, an outer query's row) keep the record path, which
//! gives the same results.

use std::ffi::{CStr, CString};

use pgrx::pg_sys;

use super::v1_function;

/// PostgreSQL's limit on function arguments (FUNC_MAX_ARGS).
const MAX_ARGS: usize = 100;

struct Column {
    name: String,
    expr: *mut pg_sys::Node,
}

unsafe fn nth(list: *mut pg_sys::List, n: i32) -> *mut pg_sys::Node {
    pg_sys::list_nth(list, n) as *mut pg_sys::Node
}

/// A non-dropped field of a row type.
struct Field {
    attnum: i16,
    name: String,
    typid: pg_sys::Oid,
    typmod: i32,
    collation: pg_sys::Oid,
}

/// The named fields of a row type.
unsafe fn row_fields(row_type: pg_sys::Oid) -> Option<Vec<Field>> {
    let desc = pg_sys::lookup_rowtype_tupdesc_noerror(row_type, -1, true);
    if desc.is_null() {
        return None;
    }
    let fields = super::tuple_desc_attributes(desc)
        .iter()
        .filter(|a| !a.attisdropped)
        .map(|a| {
            let name = CStr::from_ptr(a.attname.data.as_ptr()).to_string_lossy().into_owned();
            Field { attnum: a.attnum, name, typid: a.atttypid, typmod: a.atttypmod, collation: a.attcollation }
        })
        .collect();
    pg_sys::DecrTupleDescRefCount(desc);
    Some(fields)
}

/// The row argument as named columns, when it is a whole-row reference or a ROW() of a named
/// row type.
unsafe fn columns_of(row: *mut pg_sys::Node) -> Option<(pg_sys::Oid, Vec<Column>)> {
    match (*row).type_ {
        pg_sys::NodeTag::T_Var => {
            let var = row as *mut pg_sys::Var;
            // A row of an outer query (a LATERAL subquery's reference, a correlated subquery)
            // stays whole: the outer query has already chosen the columns its scan emits, and
            // column references added now would find no column to read ("variable not found
            // in subplan target list").
            if (*var).varattno != 0 || (*var).vartype == pg_sys::RECORDOID || (*var).varlevelsup > 0 {
                return None;
            }
            let fields = row_fields((*var).vartype)?;
            let columns = fields
                .into_iter()
                .map(|f| Column {
                    expr: pg_sys::makeVar((*var).varno, f.attnum, f.typid, f.typmod, f.collation, (*var).varlevelsup)
                        as *mut pg_sys::Node,
                    name: f.name,
                })
                .collect();
            Some(((*var).vartype, columns))
        }
        pg_sys::NodeTag::T_RowExpr => {
            let rowexpr = row as *mut pg_sys::RowExpr;
            if (*rowexpr).row_typeid == pg_sys::RECORDOID {
                return None;
            }
            let fields = row_fields((*rowexpr).row_typeid)?;
            let nargs = pg_sys::list_length((*rowexpr).args);
            // a ROW() of a named type lists its non-dropped fields in order
            if nargs as usize != fields.len() {
                return None;
            }
            let columns = fields
                .into_iter()
                .enumerate()
                .map(|(i, f)| Column { name: f.name, expr: nth((*rowexpr).args, i as i32) })
                .collect();
            Some(((*rowexpr).row_typeid, columns))
        }
        _ => None,
    }
}

/// `health_score_internal._<name>_columns(<leading argument types>, oid, text[], VARIADIC "any")`
/// for a function `<name>` or `_<name>`; in schema `health_score` for a database whose SQL is
/// still 0.2.0 or older (the library is updated before `ALTER EXTENSION UPDATE` runs), so
/// that it keeps its plans until then.
unsafe fn lookup_columns_function(funcid: pg_sys::Oid, leading: &[pg_sys::Oid]) -> Option<pg_sys::Oid> {
    let name = CStr::from_ptr(pg_sys::get_func_name(funcid)).to_string_lossy().into_owned();
    let target = CString::new(format!("_{}_columns", name.trim_start_matches('_'))).ok()?;
    let argtypes: Vec<pg_sys::Oid> =
        leading.iter().copied().chain([pg_sys::OIDOID, pg_sys::TEXTARRAYOID, pg_sys::ANYOID]).collect();
    [c"health_score_internal", c"health_score"].into_iter().find_map(|schema| {
        let mut names: *mut pg_sys::List = std::ptr::null_mut();
        names = pg_sys::lappend(names, pg_sys::makeString(pg_sys::pstrdup(schema.as_ptr())) as *mut _);
        names = pg_sys::lappend(names, pg_sys::makeString(pg_sys::pstrdup(target.as_ptr())) as *mut _);
        let oid = pg_sys::LookupFuncName(names, argtypes.len() as i32, argtypes.as_ptr(), true);
        (oid != pg_sys::InvalidOid).then_some(oid)
    })
}

unsafe fn names_const(columns: &[Column]) -> *mut pg_sys::Node {
    let mut datums: Vec<pg_sys::Datum> = columns.iter().map(|c| super::text_datum(&c.name)).collect();
    let array = pg_sys::construct_array(
        datums.as_mut_ptr(),
        datums.len() as i32,
        pg_sys::TEXTOID,
        -1,
        false,
        pg_sys::TYPALIGN_INT as std::ffi::c_char,
    );
    pg_sys::makeConst(pg_sys::TEXTARRAYOID, -1, pg_sys::InvalidOid, -1, pg_sys::Datum::from(array), false, false)
        as *mut pg_sys::Node
}

// A V1 function although it runs once per planned call: its argument and result are planner
// nodes, which pgrx would pass through untouched, and a NULL result (pgrx's `Internal(None)`)
// would make the planner's call fail where a null pointer means "nothing to simplify".
v1_function!(hs_row_support, pg_finfo_hs_row_support, |fcinfo| {
    let nothing = pg_sys::Datum::from(0usize);
    let Some(request) = super::arg(fcinfo, 0) else { return Ok(nothing) };
    let request = request.cast_mut_ptr::<pg_sys::Node>();
    if (*request).type_ != pg_sys::NodeTag::T_SupportRequestSimplify {
        return Ok(nothing);
    }
    let call = (*(request as *mut pg_sys::SupportRequestSimplify)).fcall;
    // the row is the last argument; the ones before it (the model, ...) are passed on as they are
    let nargs = pg_sys::list_length((*call).args);
    if nargs < 2 {
        return Ok(nothing);
    }
    let leading: Vec<*mut pg_sys::Node> = (0..nargs - 1).map(|i| nth((*call).args, i)).collect();
    let Some((row_type, columns)) = columns_of(nth((*call).args, nargs - 1)) else { return Ok(nothing) };
    if columns.is_empty() || columns.len() + leading.len() + 2 > MAX_ARGS {
        return Ok(nothing);
    }
    let leading_types: Vec<pg_sys::Oid> = leading.iter().map(|&a| pg_sys::exprType(a)).collect();
    let Some(target) = lookup_columns_function((*call).funcid, &leading_types) else { return Ok(nothing) };
    let mut args: *mut pg_sys::List = std::ptr::null_mut();
    for a in leading {
        args = pg_sys::lappend(args, a.cast());
    }
    let row_type_const =
        pg_sys::makeConst(pg_sys::OIDOID, -1, pg_sys::InvalidOid, 4, pg_sys::Datum::from(row_type), false, true);
    args = pg_sys::lappend(args, row_type_const.cast());
    args = pg_sys::lappend(args, names_const(&columns).cast());
    for c in &columns {
        args = pg_sys::lappend(args, c.expr.cast());
    }
    let rewritten = pg_sys::makeFuncExpr(
        target,
        (*call).funcresulttype,
        args,
        (*call).funccollid,
        (*call).inputcollid,
        pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
    );
    (*rewritten).funcretset = (*call).funcretset;
    (*rewritten).location = (*call).location;
    Ok(pg_sys::Datum::from(rewritten))
});

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/row_support.rs");
}
