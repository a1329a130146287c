//! health_score: explainable customer health scores inside PostgreSQL.
//!
//! `core` (the crate `health_score_core`) is the scoring model in plain Rust (no PostgreSQL types); `pg` is the extension's
//! SQL surface around it. The SQL declarations live in `sql/`, one file per concept, each loaded
//! by the skin module of that concept.

pub use health_score_core as core;
pub mod pg;

::pgrx::pg_module_magic!(name, version);

/// Loads with the library: long computations of the core check for cancellation
/// (statement_timeout, pg_cancel_backend) through PostgreSQL's CHECK_FOR_INTERRUPTS.
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // A PostgreSQL error raised inside a query the extension runs is caught and re-raised
    // through Rust; pgrx would add the Rust backtrace of that moment to its DETAIL whenever
    // the server's environment enables backtraces (RUST_BACKTRACE). No client is to see one:
    // std reads this variable before RUST_BACKTRACE, once, at the first capture.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    core::interrupts::install(check_for_interrupts, check_stack_depth);
    core::parallel::install(fit_threads);
    pg::models::define_settings();
}

/// The threads a fit's passes over its rows may use: as many as the processes of a parallel
/// query (the leader and `max_parallel_workers_per_gather` workers), at most the CPUs this
/// process may run on, and one in a parallel worker. The helper threads do arithmetic on the
/// fit's own memory and call nothing of PostgreSQL (`core::parallel`).
fn fit_threads() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cpus = *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // SAFETY: plain reads of the backend's own globals, on its own thread
    let (in_worker, workers) =
        unsafe { (pgrx::pg_sys::ParallelWorkerNumber >= 0, pgrx::pg_sys::max_parallel_workers_per_gather) };
    if in_worker {
        return 1;
    }
    (1 + workers.max(0) as usize).min(cpus)
}

fn check_for_interrupts() {
    pgrx::pg_sys::check_for_interrupts!();
}

fn check_stack_depth() {
    unsafe { pgrx::pg_sys::check_stack_depth() }
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
