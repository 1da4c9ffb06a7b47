//! The `gradc` binary: the command line of [`gradc::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    keep_freed_memory();
    // The checker's guard against deep recursion (`stacker`) needs the main thread's
    // stack bounds, which glibc finds by reading /proc/self/maps (0.1 ms here): looked
    // up once at start-up rather than inside the first compile.
    let _ = stacker::remaining_stack();
    // The recursive stages grow their own stack (see `gradc::driver`), so the command
    // runs on the main thread; a bug still ends in an error message, not a crash.
    std::panic::catch_unwind(gradc::cli::main).unwrap_or_else(|_| {
        eprintln!("error: internal error (please report it with the input file)");
        ExitCode::from(101)
    })
}

/// Asks glibc's allocator to keep memory the process frees (the JIT's working memory,
/// the parsed data file) for its next allocations, rather than hand it back to the
/// kernel and fault fresh pages in again: a page the kernel maps costs about 2 µs on
/// the benchmark machine, and a workspace of megabytes is allocated right after the
/// data is parsed. Allocations up to 32 MiB (glibc's limit) come from the heap.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets the allocator's parameters; called before any thread
    // is spawned.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
