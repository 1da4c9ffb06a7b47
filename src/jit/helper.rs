//! The one persistent helper thread that native code, the matrix product and the JIT
//! share to use a second core.
//!
//! In: a `work` closure that claims its own units of work (with an atomic counter, say),
//! so that it is correct whether one thread or two run it. Out: [`run_on_two_threads`]
//! returns once every thread that ran `work` has returned from it.
//!
//! Invariants:
//!
//! - One helper per process, spawned on first use (or by [`start_helper_thread`]); it is
//!   never joined.
//!   `GRADC_THREADS=1` (or a one-core host) disables it: callers then run alone.
//! - A caller that finds the helper busy (another thread is using it) runs `work` alone,
//!   and a caller that finishes before the helper has picked its job up takes the job
//!   back: a loaded machine costs a hand-over, never a wait for a core.
//! - A steady-state call does not allocate: the job is a borrowed closure handed over in
//!   a `Mutex` slot.
//! - Both sides poll for a short while ([`POLL`]) before they sleep, so the jobs of one
//!   call (a few products and loop nests, microseconds apart) do not each pay a wake-up.
//! - A poster that finds the helper asleep keeps it off the poster's CPU while it wakes
//!   ([`steer_away`]); once awake, the helper may run anywhere again.
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
    /// The helper sleeps on `posted` (it has stopped polling).
    sleeping: bool,
    /// The helper's CPUs before a poster steered its wake-up away from the poster's CPU
    /// ([`steer_away`]); the helper restores them once awake.
    steered_from: Option<Cpus>,
}

/// The helper's mailbox. The atomics mirror the slot so that either side can poll
/// without the lock for a while before it sleeps.
struct Helper {
    slot: Mutex<Slot>,
    /// The helper's thread id, once it runs (0 before), for [`steer_away`].
    tid: std::sync::atomic::AtomicI32,
    /// Signalled when a job is posted.
    posted: Condvar,
    /// Signalled when a job has returned.
    done: Condvar,
    /// `slot.job.is_some()`.
    has_job: AtomicBool,
    /// `slot.finished`.
    finished: AtomicBool,
    /// The helper thread runs: the standard library's start-up of a thread, which
    /// allocates once, is over.
    started: AtomicBool,
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
            .and_then(|t| t.trim().parse::<usize>().ok())
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
            tid: std::sync::atomic::AtomicI32::new(0),
            has_job: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            started: AtomicBool::new(false),
        }));
        let parent_cpu = current_cpu();
        std::thread::Builder::new()
            .name("gradc-helper".into())
            .spawn(move || {
                helper.tid.store(thread_id(), Ordering::Relaxed);
                helper.started.store(true, Ordering::Release);
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
            let job = loop {
                if let Some(job) = slot.job.take() {
                    helper.has_job.store(false, Ordering::Relaxed);
                    break job;
                }
                slot.sleeping = true;
                slot = helper
                    .posted
                    .wait(slot)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                slot.sleeping = false;
                // Awake (where the poster steered it): free to move again.
                if let Some(cpus) = slot.steered_from.take() {
                    set_cpus(0, &cpus);
                }
            };
            job
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

/// Starts the helper thread now, if it is not running yet (otherwise the first
/// [`run_on_two_threads`] starts it). A new thread can take from 0.1 to 2 ms to run for
/// the first time on a virtual machine, so a program that compiles soon after it starts
/// gets the second core sooner by starting the helper first; it then sleeps until used.
pub fn start_helper_thread() {
    let _ = helper();
}

/// Whether the helper thread (started if need be) has begun to run: the standard
/// library's start-up of the new thread, which allocates, is then over. A thread can
/// first run milliseconds after it was spawned, so a program that counts allocations
/// waits for this before it measures. `false` with one thread (see [`threads`]).
pub fn helper_thread_started() -> bool {
    helper().is_some_and(|helper| helper.started.load(Ordering::Acquire))
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
        if slot.sleeping && slot.steered_from.is_none() {
            slot.steered_from = steer_away(helper.tid.load(Ordering::Relaxed));
        }
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

/// A thread's CPU affinity (where the host has one).
#[cfg(target_os = "linux")]
type Cpus = libc::cpu_set_t;
/// A thread's CPU affinity (where the host has one).
#[cfg(not(target_os = "linux"))]
type Cpus = ();

/// The calling thread's id for the affinity calls (0, "the calling thread", elsewhere).
fn thread_id() -> i32 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: no arguments; cannot fail.
        unsafe { libc::gettid() }
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// Keeps the sleeping helper (thread `tid`) off the calling thread's CPU while it wakes,
/// returning its CPUs before (for [`set_cpus`] once it is awake), or `None` if nothing
/// was changed. A thread woken after a long sleep is often placed on its waker's CPU,
/// and moved only milliseconds later: until then the two take turns on one core
/// (seen as compiles taking twice as long, one run in four, with the helper started early).
fn steer_away(tid: i32) -> Option<Cpus> {
    if tid == 0 {
        return None;
    }
    keep_off_cpu(tid, current_cpu()?)
}

/// Takes `cpu` out of the CPUs thread `tid` (0: the calling thread) may run on, if it is
/// one of them and not the only one; returns the CPUs before, or `None` if nothing was
/// changed. A thread running on `cpu` moves at once.
fn keep_off_cpu(tid: i32, cpu: usize) -> Option<Cpus> {
    #[cfg(target_os = "linux")]
    {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if cpu >= 8 * size {
            return None;
        }
        // SAFETY: `cpu_set_t` is plain data; the calls read and write exactly `size` bytes
        // of it, and `tid` is the calling thread or the helper (which never exits).
        unsafe {
            let mut before: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(tid, size, &mut before) != 0
                || !libc::CPU_ISSET(cpu, &before)
            {
                return None;
            }
            let mut others = before;
            libc::CPU_CLR(cpu, &mut others);
            if libc::CPU_COUNT(&others) == 0 || libc::sched_setaffinity(tid, size, &others) != 0 {
                return None;
            }
            Some(before)
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (tid, cpu);
        None
    }
}

/// Sets the CPUs thread `tid` (0: the calling thread) may run on.
fn set_cpus(tid: i32, cpus: &Cpus) {
    #[cfg(target_os = "linux")]
    // SAFETY: `cpus` is a whole `cpu_set_t`; `tid` is a thread of this process.
    unsafe {
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), cpus);
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (tid, cpus);
    }
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
    if let Some(allowed) = keep_off_cpu(0, cpu) {
        set_cpus(0, &allowed);
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

    #[cfg(target_os = "linux")]
    #[test]
    fn a_steered_thread_may_not_run_on_the_posters_cpu_until_set_free() {
        use std::sync::mpsc;
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let cpus_of = |tid: i32| {
            // SAFETY: plain data, `size` bytes; `tid` is a live thread of this process.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                assert_eq!(libc::sched_getaffinity(tid, size, &mut set), 0);
                set
            }
        };
        let (tid_tx, tid_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let sleeper = std::thread::spawn(move || {
            tid_tx.send(thread_id()).unwrap();
            go_rx.recv().unwrap();
        });
        let tid = tid_rx.recv().unwrap();
        let before = cpus_of(tid);
        // Pinned, so that "the poster's CPU" stays one CPU during the test.
        let mine = cpus_of(0);
        let cpu = current_cpu().expect("Linux reports the CPU");
        // SAFETY: as above.
        let count = unsafe { libc::CPU_COUNT(&before) };
        let mut pinned: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` is below the set's size (the host reported it).
        unsafe { libc::CPU_SET(cpu, &mut pinned) };
        set_cpus(0, &pinned);
        let steered = steer_away(tid);
        let during = cpus_of(tid);
        set_cpus(0, &mine);
        // SAFETY: as above.
        unsafe {
            if count < 2 || !libc::CPU_ISSET(cpu, &before) {
                // Nowhere else to go (or already elsewhere): left as it was.
                assert!(steered.is_none() || !libc::CPU_ISSET(cpu, &during));
            } else {
                let steered = steered.expect("a second CPU to steer to");
                assert!(libc::CPU_EQUAL(&steered, &before));
                assert!(!libc::CPU_ISSET(cpu, &during));
                assert_eq!(libc::CPU_COUNT(&during), count - 1);
                set_cpus(tid, &steered);
                assert!(libc::CPU_EQUAL(&cpus_of(tid), &before));
            }
        }
        go_tx.send(()).unwrap();
        sleeper.join().unwrap();
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
