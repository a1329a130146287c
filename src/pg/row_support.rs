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
        lookup_function(pg_sys::pstrdup(schema.as_ptr()), pg_sys::pstrdup(target.as_ptr()), &argtypes)
    })
}

/// The function `schema.name(argtypes)` (names palloc'd: the lookup keeps them in its list).
unsafe fn lookup_function(
    schema: *mut std::ffi::c_char,
    name: *mut std::ffi::c_char,
    argtypes: &[pg_sys::Oid],
) -> Option<pg_sys::Oid> {
    let mut names: *mut pg_sys::List = std::ptr::null_mut();
    names = pg_sys::lappend(names, pg_sys::makeString(schema) as *mut _);
    names = pg_sys::lappend(names, pg_sys::makeString(name) as *mut _);
    let oid = pg_sys::LookupFuncName(names, argtypes.len() as i32, argtypes.as_ptr(), true);
    (oid != pg_sys::InvalidOid).then_some(oid)
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

/// For Citus (the caller checks it is installed): a model named by a constant, as its
/// version's config (a jsonb constant), so that the workers, whose registries are empty, score
/// with it: the task queries Citus sends them are deparsed from the plan. A cached plan then
/// holds that version: `set_model` invalidates every cached plan that calls a function
/// (`src/pg/registry.rs`), so that none keeps a superseded version. Outside a planner (no
/// `root`), or for a name that resolves to nothing (the call raises its error when it runs),
/// None.
unsafe fn inline_for_citus(root: *mut pg_sys::PlannerInfo, model: *mut pg_sys::Node) -> Option<*mut pg_sys::Node> {
    if root.is_null() || (*model).type_ != pg_sys::NodeTag::T_Const {
        return None;
    }
    let model = model as *mut pg_sys::Const;
    if (*model).consttype != pg_sys::TEXTOID || (*model).constisnull {
        return None;
    }
    let spec = super::text_arg((*model).constvalue);
    let compiled = super::models::resolve_name(&spec).ok()?;
    let bytes = &compiled.bytes;
    let copy = pg_sys::palloc(bytes.len()) as *mut u8;
    std::ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len());
    let config =
        pg_sys::makeConst(pg_sys::JSONBOID, -1, pg_sys::InvalidOid, -1, pg_sys::Datum::from(copy), false, false);
    Some(config as *mut pg_sys::Node)
}

/// Whether this database has Citus (its planner may send the plan's expressions to workers).
/// Reads the catalog: only in a transaction, as every caller (a planner, `set_model`) is.
pub fn citus_installed() -> bool {
    // SAFETY: a catalog lookup by name, which errors (missing_ok: no error) rather than crashes
    unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) != pg_sys::InvalidOid }
}

/// The function of the same schema and name as `funcid` whose arguments are `argtypes`.
unsafe fn same_function_for(funcid: pg_sys::Oid, argtypes: &[pg_sys::Oid]) -> Option<pg_sys::Oid> {
    let schema = pg_sys::get_namespace_name(pg_sys::get_func_namespace(funcid));
    let name = pg_sys::get_func_name(funcid);
    if schema.is_null() || name.is_null() {
        return None;
    }
    lookup_function(schema, name, argtypes)
}

unsafe fn list_of(nodes: &[*mut pg_sys::Node]) -> *mut pg_sys::List {
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for &n in nodes {
        list = pg_sys::lappend(list, n.cast());
    }
    list
}

unsafe fn call_of(call: *mut pg_sys::FuncExpr, funcid: pg_sys::Oid, args: *mut pg_sys::List) -> pg_sys::Datum {
    let rewritten = pg_sys::makeFuncExpr(
        funcid,
        (*call).funcresulttype,
        args,
        (*call).funccollid,
        (*call).inputcollid,
        pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
    );
    (*rewritten).funcretset = (*call).funcretset;
    (*rewritten).location = (*call).location;
    pg_sys::Datum::from(rewritten)
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
    let request = request as *mut pg_sys::SupportRequestSimplify;
    let call = (*request).fcall;
    // the row is the last argument; the ones before it (the model, ...) are passed on as they are
    let nargs = pg_sys::list_length((*call).args);
    if nargs < 2 {
        return Ok(nothing);
    }
    let mut funcid = (*call).funcid;
    let mut leading: Vec<*mut pg_sys::Node> = (0..nargs - 1).map(|i| nth((*call).args, i)).collect();
    let last = nth((*call).args, nargs - 1);
    // one catalog lookup per planned call
    let citus = citus_installed();
    let mut inlined = false;
    let config = if citus { inline_for_citus((*request).root, leading[0]) } else { None };
    if let Some(config) = config {
        // the declared types (a row is passed as `record`), the model's as jsonb
        let mut declared: *mut pg_sys::Oid = std::ptr::null_mut();
        let mut count = 0;
        pg_sys::get_func_signature(funcid, &mut declared, &mut count);
        let mut argtypes: Vec<pg_sys::Oid> = (0..count as usize).map(|i| *declared.add(i)).collect();
        argtypes[0] = pg_sys::JSONBOID;
        if let Some(inline_form) = same_function_for(funcid, &argtypes) {
            leading[0] = config;
            funcid = inline_form;
            inlined = true;
        }
    }
    let whole = |leading: &[*mut pg_sys::Node]| {
        if inlined {
            call_of(call, funcid, list_of(&[leading, &[last]].concat()))
        } else {
            nothing
        }
    };
    let Some((row_type, columns)) = columns_of(last) else { return Ok(whole(&leading)) };
    if columns.is_empty() || columns.len() + leading.len() + 2 > MAX_ARGS {
        return Ok(whole(&leading));
    }
    let leading_types: Vec<pg_sys::Oid> = leading.iter().map(|&a| pg_sys::exprType(a)).collect();
    let Some(target) = lookup_columns_function(funcid, &leading_types) else { return Ok(whole(&leading)) };
    let mut args = list_of(&leading);
    // the row type only names the row in errors; under Citus the workers know no coordinator
    // OID, and a shard's row type is another one: none is sent then
    let row_type = if citus { pg_sys::InvalidOid } else { row_type };
    let row_type_const =
        pg_sys::makeConst(pg_sys::OIDOID, -1, pg_sys::InvalidOid, 4, pg_sys::Datum::from(row_type), false, true);
    args = pg_sys::lappend(args, row_type_const.cast());
    args = pg_sys::lappend(args, names_const(&columns).cast());
    for c in &columns {
        args = pg_sys::lappend(args, c.expr.cast());
    }
    Ok(call_of(call, target, args))
});

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/row_support.rs");
}
