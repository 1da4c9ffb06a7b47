//! Steady-state calls do not allocate: a counting global allocator around repeated
//! calls through a prepared `Call` (and through `Kernel::call` with a reused workspace).
//!
//! Matrix products above the runtime's small-product limit use thread-local packing
//! buffers that only grow, so the single-threaded packed kernel does not allocate
//! either (the last model); products big enough for two threads are left out, since
//! the helper thread may size its own buffers on a later call.
//!
//! The counter is process-wide, so this test runs without libtest's harness
//! (`harness = false` in `Cargo.toml`): libtest's main thread allocates for its own
//! bookkeeping while a test thread runs, and on a loaded machine that landed inside the
//! measured calls once. Here the only other thread is gradc's own helper, and the test
//! waits for it to have started: the standard library's start-up of a thread allocates
//! once, in the new thread, and a thread can first run milliseconds after its spawn (on
//! a loaded machine, during the measured calls: CI failed so, twice).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use gradc::Model;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f`.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    f();
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

fn check_no_allocation(source: &str) {
    let model = Model::from_source(source).expect("compiles");
    let bound = gradc::data::random_point(model.forward_function(), 3);
    let args = bound.arg_data();
    let (loss, grads) = model.value_and_grad_vec(&bound).expect("call");
    let mut grads: Vec<Vec<f64>> = grads.into_iter().map(|t| vec![0.0; t.len()]).collect();
    let mut slices: Vec<&mut [f64]> = grads.iter_mut().map(|g| g.as_mut_slice()).collect();
    let mut call = model.prepare(&bound.dims).expect("prepare");
    // The first calls size the workspace and cache the layout.
    call.value_and_grad(&args, &mut slices).expect("call");
    call.forward(&args).expect("call");
    let n = allocations(|| {
        for _ in 0..100 {
            let again = call.value_and_grad(&args, &mut slices).expect("call");
            assert_eq!(again.to_bits(), loss.to_bits());
            call.forward(&args).expect("call");
        }
    });
    assert_eq!(n, 0, "steady-state calls allocated {n} times:\n{source}");
}

fn main() {
    print!("test steady_state_calls_do_not_allocate ... ");
    steady_state_calls_do_not_allocate();
    println!("ok");
}

fn steady_state_calls_do_not_allocate() {
    // The counter sees allocations at all.
    assert!(allocations(|| drop(std::hint::black_box(vec![1u8; 16]))) > 0);
    gradc::jit::start_helper_thread();
    let start = std::time::Instant::now();
    while gradc::jit::threads() > 1 && !gradc::jit::helper_thread_started() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the helper thread did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    check_no_allocation(
        "input x\ninput t\nparam w\nparam b\nloss = 0.5 * (sigmoid(w * x + b) - t)^2\n",
    );
    check_no_allocation(
        "input x: [N]\nparam a\nparam c\n\
         loss = sum(log1p(exp(a * x + c)) * square(tanh(x)) + sigmoid(a * x) * c)\n",
    );
    check_no_allocation(
        "input x: [B, D]\ninput labels: int[B]\nparam W: [D, K]\nparam b: [K]\n\
         let logits = x @ W + b\noutput p = softmax(logits, 1)\n\
         loss = -mean(pick(log_softmax(logits, 1), labels)) + sum(exp(sum(logits, 0)))\n",
    );
    check_no_allocation(
        "input w: int[B]\nparam E: [V, D]\nparam v: [D]\nloss = sum(tanh(E[w] @ v)) + logsumexp(E)\n",
    );
    // Packed products (32 × 64 × 48 and friends, above the small limit), transposed
    // in the gradient.
    check_no_allocation(
        "input x: [32, 64]\nparam W: [64, 48]\nparam U: [48, 40]\n\
         loss = sum(tanh(tanh(x @ W) @ U))\n",
    );
}
