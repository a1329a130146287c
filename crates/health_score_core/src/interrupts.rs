//! Long computations ask their host whether to stop. The core knows nothing of PostgreSQL:
//! the extension installs a check (PostgreSQL's CHECK_FOR_INTERRUPTS, which raises the
//! cancellation as an ERROR that unwinds out of here as a panic and is re-raised as itself),
//! and loops that can run long call `Ticker::tick` (cheap) or `check` (a call and an atomic
//! load). Outside PostgreSQL, as in `cargo test`, nothing is installed and nothing happens.

use std::sync::OnceLock;

static CHECK: OnceLock<fn()> = OnceLock::new();
static CHECK_STACK: OnceLock<fn()> = OnceLock::new();

/// Installs the host's checks (for a cancellation, and of the stack's depth), once per
/// process; later calls change nothing.
pub fn install(check: fn(), check_stack: fn()) {
    let _ = CHECK.set(check);
    let _ = CHECK_STACK.set(check_stack);
}

/// Runs the host's stack depth check (PostgreSQL's check_stack_depth): recursive code calls
/// it at each level. The model's limits already bound the recursion far below the stack's
/// size; this is the second line.
#[inline]
pub fn check_stack() {
    if super::parallel::on_helper() {
        return;
    }
    if let Some(check) = CHECK_STACK.get() {
        check();
    }
}

/// Runs the host's check now (on a pass's helper thread, nothing: the host's checks run on its
/// own thread).
#[inline]
pub fn check() {
    if super::parallel::on_helper() {
        return;
    }
    if let Some(check) = CHECK.get() {
        check();
    }
}

/// Counts the steps of a loop and checks every 65,536th: a step of microseconds or less
/// leaves a cancellation waiting a small fraction of a second.
#[derive(Default)]
pub struct Ticker(u32);

impl Ticker {
    #[inline(always)]
    pub fn tick(&mut self) {
        self.0 = self.0.wrapping_add(1);
        if self.0 & 0xFFFF == 0 {
            check();
        }
    }
}
