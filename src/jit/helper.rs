//! The one persistent helper thread that native code, the matrix product and the JIT
//! share to use a second core.
//!
//! In: a `work` closure that claims its own units of work (with an atomic counter, say),
//! so that it is correct whether one thread or two run it. Out: [`run_on_two_threads`]
//! returns once every thread that ran `work` has returned from it.
//!
//! Invariants:
//!
//! - One helper per process, spawned on first use; it is never joined.
//!   `GRADC_THREADS=1` (or a one-core host) disables it: callers then run alone.
//! - A caller that finds the helper busy (another thread is using it) runs `work` alone,
//!   and a caller that finishes before the helper has picked its job up takes the job
//!   back: a loaded machine costs a hand-over, never a wait for a core.
//! - A steady-state call does not allocate: the job is a borrowed closure handed over in
//!   a `Mutex` slot.
//! - Both sides poll for a short while ([`POLL`]) before they sleep, so the jobs of one
//!   call (a few products and loop nests, microseconds apart) do not each pay a wake-up.
//! - The helper starts on a different CPU from the thread that spawned it. Some kernels
//!   (seen on a 2-vCPU Firecracker guest) place a new thread on its parent's CPU and
//!   only move it milliseconds later, so two threads would take turns on one core for
//!   the whole of a short job.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A job handed to the helper: a borrowed closure, erased to `'static` for the duration
/// of [`run_on_two_threads`] (which takes it back or waits for it).
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn() + Sync + 'static));

// SAFETY: the closure is `Sync` and outlives the job (see `run_on_two_threads`).
unsafe impl Send for Job {}

/// The hand-over slot.
#[derive(Default)]
struct Slot {
    /// A job posted and not yet taken.
    job: Option<Job>,
    /// The job taken last has returned.
    finished: bool,
}

/// The helper's mailbox. The atomics mirror the slot so that either side can poll
/// without the lock for a while before it sleeps.
struct Helper {
    slot: Mutex<Slot>,
    /// Signalled when a job is posted.
    posted: Condvar,
    /// Signalled when a job has returned.
    done: Condvar,
    /// `slot.job.is_some()`.
    has_job: AtomicBool,
    /// `slot.finished`.
    finished: AtomicBool,
}

/// How long either side polls before it sleeps on a condition variable. Waking a
/// sleeping thread can take tens or hundreds of microseconds (a halted virtual CPU must
/// be rescheduled by the host), against a hand-over of about a microsecond when polled;
/// the jobs of one call come closer together than this.
const POLL: Duration = Duration::from_micros(300);

/// Polls `ready` for up to [`POLL`]; whether it became true.
fn poll(ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() > POLL {
            return ready();
        }
    }
}

/// Set while some caller uses the helper.
static BUSY: AtomicBool = AtomicBool::new(false);

/// The number of threads [`run_on_two_threads`] may use: 2, or 1 on a one-core host or
/// with `GRADC_THREADS=1`.
pub fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        let available = std::thread::available_parallelism().map_or(1, |n| n.get());
        let allowed = std::env::var("GRADC_THREADS")
            .ok()
            .and_then(|t| t.parse::<usize>().ok())
            .unwrap_or(2);
        available.min(allowed).clamp(1, 2)
    })
}

fn helper() -> Option<&'static Helper> {
    static HELPER: OnceLock<Option<&'static Helper>> = OnceLock::new();
    *HELPER.get_or_init(|| {
        if threads() < 2 {
            return None;
        }
        let helper: &'static Helper = Box::leak(Box::new(Helper {
            slot: Mutex::new(Slot::default()),
            posted: Condvar::new(),
            done: Condvar::new(),
            has_job: AtomicBool::new(false),
            finished: AtomicBool::new(false),
        }));
        let parent_cpu = current_cpu();
        std::thread::Builder::new()
            .name("gradc-helper".into())
            .spawn(move || {
                if let Some(cpu) = parent_cpu {
                    leave_cpu(cpu);
                }
                helper_loop(helper)
            })
            .ok()
            .map(|_| helper)
    })
}

fn helper_loop(helper: &'static Helper) -> ! {
    loop {
        poll(|| helper.has_job.load(Ordering::Acquire));
        let job = {
            let mut slot = lock(&helper.slot);
            loop {
                if let Some(job) = slot.job.take() {
                    helper.has_job.store(false, Ordering::Relaxed);
                    break job;
                }
                slot = helper
                    .posted
                    .wait(slot)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        // SAFETY: the poster keeps the closure alive until it sees `finished`. A panic
        // is caught so that the poster is still told the job returned (the poster's
        // own copy of `work` finds the units it left undone, or reports the failure).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { (*job.0)() }));
        let mut slot = lock(&helper.slot);
        slot.finished = true;
        helper.finished.store(true, Ordering::Release);
        helper.done.notify_one();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `work` on the calling thread and, when it is free, on the helper thread too;
/// returns when both have returned. `work` must claim its units of work itself.
pub fn run_on_two_threads(work: &(dyn Fn() + Sync)) {
    let Some(helper) = helper() else {
        work();
        return;
    };
    if BUSY.swap(true, Ordering::Acquire) {
        work();
        return;
    }
    // SAFETY: only the lifetime is erased; this function takes the job back or waits
    // for the helper to return from it before returning itself.
    let job = Job(unsafe {
        std::mem::transmute::<*const (dyn Fn() + Sync + '_), *const (dyn Fn() + Sync)>(work)
    });
    {
        let mut slot = lock(&helper.slot);
        slot.job = Some(job);
        slot.finished = false;
        helper.finished.store(false, Ordering::Relaxed);
        helper.has_job.store(true, Ordering::Release);
        helper.posted.notify_one();
    }
    work();
    let taken_back = {
        let mut slot = lock(&helper.slot);
        let job = slot.job.take();
        if job.is_some() {
            helper.has_job.store(false, Ordering::Relaxed);
        }
        job.is_some()
    };
    if !taken_back && !poll(|| helper.finished.load(Ordering::Acquire)) {
        let mut slot = lock(&helper.slot);
        while !slot.finished {
            slot = helper
                .done
                .wait(slot)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
    BUSY.store(false, Ordering::Release);
}

/// The CPU the calling thread runs on, where the host says.
fn current_cpu() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: no arguments; returns -1 on failure.
        let cpu = unsafe { libc::sched_getcpu() };
        usize::try_from(cpu).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Moves the calling thread off `cpu` (if another CPU is allowed), then lets it run
/// anywhere it was allowed before: the scheduler leaves it where it now is.
fn leave_cpu(cpu: usize) {
    #[cfg(target_os = "linux")]
    {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `cpu_set_t` is plain data; the calls read and write exactly `size`
        // bytes of it, and pid 0 is the calling thread.
        unsafe {
            let mut allowed: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, size, &mut allowed) != 0 {
                return;
            }
            if cpu >= 8 * size || !libc::CPU_ISSET(cpu, &allowed) {
                return;
            }
            let mut others = allowed;
            libc::CPU_CLR(cpu, &mut others);
            if libc::CPU_COUNT(&others) == 0 {
                return;
            }
            // Setting a mask without the current CPU migrates the thread at once.
            if libc::sched_setaffinity(0, size, &others) == 0 {
                libc::sched_setaffinity(0, size, &allowed);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_unit_runs_exactly_once_whoever_runs_it() {
        for _ in 0..200 {
            let next = AtomicUsize::new(0);
            let counts: Vec<AtomicUsize> = (0..7).map(|_| AtomicUsize::new(0)).collect();
            run_on_two_threads(&|| loop {
                let unit = next.fetch_add(1, Ordering::Relaxed);
                if unit >= counts.len() {
                    return;
                }
                counts[unit].fetch_add(1, Ordering::Relaxed);
            });
            assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn concurrent_callers_each_finish_their_own_work() {
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        let next = AtomicUsize::new(0);
                        let done = AtomicUsize::new(0);
                        run_on_two_threads(&|| {
                            while next.fetch_add(1, Ordering::Relaxed) < 16 {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                        assert_eq!(done.load(Ordering::Relaxed), 16);
                    }
                });
            }
        });
    }
}
