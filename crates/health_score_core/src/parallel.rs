//! The fits' passes over their rows, on more than one thread where the host allows it.
//!
//! A pass is cut into chunks of a size set by its number of rows (whatever the number of
//! threads), each chunk's result is computed alone, and the results are combined in chunk
//! order by the caller: the outcome is the same to the bit on one thread or several. The helper threads run plain
//! arithmetic on memory the caller lends them; they call nothing of the host (a cancellation
//! check on a helper does nothing: the calling thread's checks, between its own chunks, are
//! the ones that count) and take no signal (all are blocked before they are spawned, so the
//! host's signal handlers keep running on the thread that expects them).

use std::cell::Cell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use super::solver::BLOCK;

/// Rows per chunk at least: enough that a chunk's own accumulators (a Hessian of a few
/// thousand numbers) cost little beside its rows.
const MIN_CHUNK_ROWS: usize = 16 * BLOCK;
/// Chunks per pass at most (larger chunks past that): each chunk's result is kept until the
/// pass ends, and a Hessian can be large.
const MAX_CHUNKS: usize = 64;

/// The rows of a chunk of a pass over `rows` rows: a whole number of blocks, whatever the
/// number of threads.
fn chunk_rows(rows: usize) -> usize {
    (rows.div_ceil(MAX_CHUNKS).div_ceil(BLOCK) * BLOCK).max(MIN_CHUNK_ROWS)
}

static HOST_THREADS: OnceLock<fn() -> usize> = OnceLock::new();

thread_local! {
    static HELPER: Cell<bool> = const { Cell::new(false) };
    static OVERRIDE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Installs the host's rule for how many threads a pass may use (read at every pass, on the
/// calling thread); without one a pass runs on the calling thread alone.
pub fn install(threads: fn() -> usize) {
    let _ = HOST_THREADS.set(threads);
}

/// Runs `f` with passes on `threads` threads (on this thread only): for tests and benchmarks.
pub fn with_threads<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    let before = OVERRIDE.with(|o| o.replace(Some(threads.max(1))));
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(before);
    f()
}

/// Whether this thread is a pass's helper (which must not call the host).
pub fn on_helper() -> bool {
    HELPER.with(|h| h.get())
}

fn threads() -> usize {
    if on_helper() {
        return 1;
    }
    OVERRIDE.with(|o| o.get()).or_else(|| HOST_THREADS.get().map(|f| f())).unwrap_or(1).max(1)
}

/// `work(rows, out)` for every chunk of `0..rows`, its results in chunk order. `out` holds one
/// element per row (each chunk gets its own rows' part) or none (each chunk gets an empty
/// slice).
pub fn chunks<T: Send, U: Send>(
    rows: usize,
    out: &mut [U],
    work: impl Fn(Range<usize>, &mut [U]) -> T + Sync,
) -> Vec<T> {
    assert!(out.is_empty() || out.len() == rows, "one output per row, or none");
    let per_row = !out.is_empty();
    let size = chunk_rows(rows);
    let count = rows.div_ceil(size);
    let range = |c: usize| c * size..((c + 1) * size).min(rows);
    // chunks first..last, their outputs in `part`
    let run = |first: usize, last: usize, mut part: &mut [U]| -> Vec<T> {
        (first..last)
            .map(|c| {
                let rows = range(c);
                let (own, rest) = std::mem::take(&mut part).split_at_mut(if per_row { rows.len() } else { 0 });
                part = rest;
                work(rows, own)
            })
            .collect()
    };
    let threads = threads().min(count);
    if threads <= 1 {
        return run(0, count, out);
    }
    // thread t runs chunks bounds[t]..bounds[t + 1]; the calling thread runs the first share
    let bounds: Vec<usize> = (0..=threads).map(|t| t * count / threads).collect();
    let mut shares = Vec::with_capacity(threads);
    let mut rest = out;
    for t in 0..threads {
        let len = if per_row { range(bounds[t + 1] - 1).end - range(bounds[t]).start } else { 0 };
        let (share, after) = std::mem::take(&mut rest).split_at_mut(len);
        rest = after;
        shares.push(share);
    }
    // each helper takes its share from its slot; a helper that could not be spawned leaves it
    // to this thread
    let mut shares = shares.into_iter();
    let first = shares.next().expect("two threads or more");
    let slots: Vec<Mutex<Option<&mut [U]>>> = shares.map(|share| Mutex::new(Some(share))).collect();
    fn take<'a, U>(slot: &Mutex<Option<&'a mut [U]>>) -> &'a mut [U] {
        slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take().unwrap_or_default()
    }
    std::thread::scope(|scope| {
        let run = &run;
        let blocked = signals::block_all();
        let helpers: Vec<_> = slots
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                let (from, to) = (bounds[i + 1], bounds[i + 2]);
                std::thread::Builder::new().name("health_score pass".into()).spawn_scoped(scope, move || {
                    HELPER.with(|h| h.set(true));
                    run(from, to, take(slot))
                })
            })
            .collect();
        signals::restore(blocked);
        let mut results = Vec::with_capacity(count);
        results.extend(run(bounds[0], bounds[1], first));
        for (i, helper) in helpers.into_iter().enumerate() {
            let part = match helper {
                Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(_) => run(bounds[i + 1], bounds[i + 2], take(&slots[i])),
            };
            results.extend(part);
        }
        results
    })
}

/// `work(item)` for every item, the results in the items' order. Items are handed out one at a
/// time to this thread and helpers (each item's own passes then run on its thread alone), so
/// a result is what one thread alone computes.
pub fn map<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads().min(items.len());
    if threads <= 1 {
        return items.iter().map(work).collect();
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    // a thread stops taking items when it leaves `drain`: at the end, or unwinding (a
    // cancellation, a panic), when the others are to stop too
    struct StopOnLeaving<'a>(&'a AtomicBool);
    impl Drop for StopOnLeaving<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let drain = || -> Vec<(usize, R)> {
        let _stop = StopOnLeaving(&stop);
        let mut done = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            done.push((i, work(item)));
        }
        done
    };
    let mut results: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let drain = &drain;
        let blocked = signals::block_all();
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("health_score pass".into())
                    .spawn_scoped(scope, move || {
                        HELPER.with(|h| h.set(true));
                        drain()
                    })
                    .ok()
            })
            .collect();
        signals::restore(blocked);
        for (i, r) in with_threads(1, drain) {
            results[i] = Some(r);
        }
        for helper in helpers {
            for (i, r) in helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)) {
                results[i] = Some(r);
            }
        }
    });
    results.into_iter().map(|r| r.expect("every item was taken once")).collect()
}

#[cfg(unix)]
mod signals {
    /// Blocks every signal on this thread (threads spawned now inherit the mask); returns the
    /// mask before.
    pub fn block_all() -> Option<libc::sigset_t> {
        // SAFETY: sigfillset and pthread_sigmask write only the sets passed to them
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut before: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            (libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut before) == 0).then_some(before)
        }
    }

    pub fn restore(before: Option<libc::sigset_t>) {
        if let Some(before) = before {
            // SAFETY: as above; `before` came from pthread_sigmask
            unsafe {
                libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(not(unix))]
mod signals {
    pub fn block_all() -> Option<()> {
        None
    }
    pub fn restore(_: Option<()>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn chunks_cover_every_row_once_in_order_on_any_number_of_threads() {
        for rows in [0, 1, 4095, 4096, 4097, 50_000, 1_000_003] {
            let mut reference = None;
            for threads in [1, 2, 3, 7] {
                let mut out = vec![0usize; rows];
                let helped = AtomicUsize::new(0);
                let ranges = with_threads(threads, || {
                    chunks(rows, &mut out, |range, own| {
                        assert_eq!(own.len(), range.len());
                        for (o, i) in own.iter_mut().zip(range.clone()) {
                            *o = i + 1;
                        }
                        helped.fetch_add(on_helper() as usize, Ordering::Relaxed);
                        range
                    })
                });
                assert!(out.iter().enumerate().all(|(i, &o)| o == i + 1), "{rows} rows, {threads} threads");
                let mut next = 0;
                for r in &ranges {
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, rows);
                assert!(ranges.len() <= MAX_CHUNKS || rows <= MAX_CHUNKS * MIN_CHUNK_ROWS);
                if threads > 1 && ranges.len() > 1 {
                    assert!(helped.load(Ordering::Relaxed) > 0, "a helper ran some chunks");
                }
                // the chunks do not depend on the threads
                assert_eq!(reference.get_or_insert_with(|| ranges.clone()), &ranges);
            }
        }
    }

    #[test]
    fn chunks_without_outputs_get_empty_slices() {
        let sums = with_threads(2, || chunks(100_000, &mut [(); 0], |range, own| (own.len(), range.sum::<usize>())));
        assert!(sums.iter().all(|&(len, _)| len == 0));
        assert_eq!(sums.iter().map(|&(_, s)| s).sum::<usize>(), (0..100_000).sum::<usize>());
    }

    #[test]
    fn map_keeps_the_items_order_and_runs_nested_passes_alone() {
        let items: Vec<usize> = (0..37).collect();
        let squares = with_threads(3, || {
            map(&items, |&i| {
                // a pass inside an item runs on the item's thread only
                assert_eq!(threads(), 1);
                i * i
            })
        });
        assert_eq!(squares, items.iter().map(|i| i * i).collect::<Vec<_>>());
        assert_eq!(with_threads(4, || map(&[] as &[u8], |_| 0)), Vec::<i32>::new());
    }

    #[test]
    fn a_panic_in_any_thread_reaches_the_caller_and_stops_the_rest() {
        let items: Vec<usize> = (0..1000).collect();
        let started = AtomicUsize::new(0);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_threads(2, || {
                map(&items, |&i| {
                    started.fetch_add(1, Ordering::Relaxed);
                    if i == 3 {
                        panic!("item 3");
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                })
            })
        }));
        assert!(caught.is_err());
        assert!(started.load(Ordering::Relaxed) < items.len(), "the other thread stopped taking items");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_threads(2, || {
                chunks(100_000, &mut [(); 0], |range, _| {
                    if on_helper() {
                        panic!("a helper's chunk {range:?}");
                    }
                })
            })
        }));
        assert!(caught.is_err());
        // the override ends with its closure, even when that unwinds
        assert_eq!(threads(), 1);
    }
}
