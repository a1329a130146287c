//! `_drivers(model, before_version, before, after_version, after, changed_only) → jsonb`: the
//! drivers of change between two stored snapshots, for `drivers` (every component, in model
//! order) and `alerts` (the components that changed, most negative first).

use std::collections::HashMap;
use std::rc::Rc;

use pgrx::pg_sys;

use crate::core::drivers::{changed, drivers, Driver};
use crate::core::Error;

use super::jsonb::JsonbRef;
use super::jsonb_build::{finish, key_order, start, write_array, write_number, write_object, write_string};
use super::models::{self, Compiled, RegistryView};
use super::{arg, call_site, return_null, text_arg, v1_function};

/// Versions are immutable, so within one statement each is looked up once per call site
/// (alerts meets the same few versions on every row).
#[derive(Default)]
struct DriversSite {
    model: String,
    versions: HashMap<i32, Rc<Compiled>>,
    registry_view: Option<RegistryView>,
    jsonb: Vec<u8>,
}

impl DriversSite {
    fn version(&mut self, model: &str, version: i32) -> Result<Rc<Compiled>, Error> {
        // versions are immutable, but the call site can outlive the statement (PL/pgSQL), and
        // a deleted version's number can be registered again: look up again in a new snapshot
        let view = RegistryView::current();
        if self.model != model || view.is_none() || view != self.registry_view {
            self.model = model.to_string();
            self.versions.clear();
            self.registry_view = view;
        }
        if let Some(hit) = self.versions.get(&version) {
            return Ok(hit.clone());
        }
        let compiled = models::resolve_name(&format!("{model}@{version}"))?;
        self.versions.insert(version, compiled.clone());
        Ok(compiled)
    }
}

const KEYS: [&str; 5] = ["component", "parent", "points_before", "points_after", "change"];

fn write_drivers(buf: &mut Vec<u8>, rows: &[Driver<'_>]) {
    let order = key_order(KEYS.len(), |i| KEYS[i]);
    start(buf);
    write_array(buf, rows.len(), |buf, i| {
        let d = &rows[i];
        write_object(
            buf,
            |k| KEYS[k],
            &order,
            |buf, k| match k {
                0 => write_string(buf, Some(d.component)),
                1 => write_string(buf, d.parent),
                2 => write_number(buf, Some(d.points_before)),
                3 => write_number(buf, Some(d.points_after)),
                _ => write_number(buf, Some(d.change())),
            },
        )
    });
    finish(buf);
}

v1_function!(hs_drivers, pg_finfo_hs_drivers, |fcinfo| {
    let args: Option<Vec<pg_sys::Datum>> = (0..6).map(|n| arg(fcinfo, n)).collect();
    let Some(args) = args else { return Ok(return_null(fcinfo)) };
    let model = text_arg(args[0]);
    let site: &mut DriversSite = call_site(fcinfo);
    let before_model = site.version(&model, args[1].value() as i32)?;
    let after_model = site.version(&model, args[3].value() as i32)?;
    let before = JsonbRef::from_datum(args[2]);
    let after = JsonbRef::from_datum(args[4]);
    let all = drivers(
        &before_model.model,
        &after_model.model,
        |c| before.nested_number(c, "points"),
        |c| after.nested_number(c, "points"),
    );
    let rows = if args[5].value() != 0 { changed(all) } else { all };
    let buf = &mut site.jsonb;
    write_drivers(buf, &rows);
    let out = pg_sys::palloc(buf.len()) as *mut u8;
    std::ptr::copy_nonoverlapping(buf.as_ptr(), out, buf.len());
    Ok(pg_sys::Datum::from(out))
});

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/drivers.rs");
}
