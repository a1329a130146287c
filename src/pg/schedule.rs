//! The pg_cron jobs `health_score.schedule` registers (their SQL is in
//! `sql/health_score.sql`) live in pg_cron's table, which `DROP EXTENSION health_score` does not
//! touch: left there, they would fail every time they run. An event trigger on `DROP
//! EXTENSION` removes them first. It must be C: only the trigger's own arguments say which
//! extensions a DROP names, and they are not visible to PL/pgSQL.

use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::spi::Spi;

use crate::core::Error;

use super::v1_function;

/// Whether the statement of an event trigger call is a `DROP EXTENSION` naming health_score.
unsafe fn drops_this_extension(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    let context = (*fcinfo).context;
    if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_EventTriggerData {
        return false;
    }
    let tree = (*(context as *mut pg_sys::EventTriggerData)).parsetree;
    if tree.is_null() || (*tree).type_ != pg_sys::NodeTag::T_DropStmt {
        return false;
    }
    let drop = tree as *mut pg_sys::DropStmt;
    let objects = (*drop).objects;
    if (*drop).removeType != pg_sys::ObjectType::OBJECT_EXTENSION || objects.is_null() {
        return false;
    }
    (0..(*objects).length as usize).any(|i| {
        let node = (*(*objects).elements.add(i)).ptr_value as *mut pg_sys::Node;
        !node.is_null()
            && (*node).type_ == pg_sys::NodeTag::T_String
            && CStr::from_ptr((*(node as *mut pg_sys::String)).sval).to_bytes() == b"health_score"
    })
}

// _on_drop_extension() RETURNS event_trigger, on ddl_command_start of DROP EXTENSION
v1_function!(hs_on_drop_extension, pg_finfo_hs_on_drop_extension, |fcinfo| {
    if drops_this_extension(fcinfo) {
        Spi::run("SELECT health_score._unschedule_all()").map_err(|e| Error::InvalidArgument {
            message: format!("removing health_score's pg_cron jobs failed: {e}"),
            hint: None,
        })?;
    }
    Ok(pg_sys::Datum::from(0usize))
});
