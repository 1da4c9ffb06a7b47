//! The `gradc` binary: the command line of [`gradc::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    // The recursive stages grow their own stack (see `gradc::driver`), so the command
    // runs on the main thread; a bug still ends in an error message, not a crash.
    std::panic::catch_unwind(gradc::cli::main).unwrap_or_else(|_| {
        eprintln!("error: internal error (please report it with the input file)");
        ExitCode::from(101)
    })
}
