//! The `gradc` binary: the command line of [`gradc::cli`].

use std::process::ExitCode;

/// Stack for the command: printing or compiling a deeply nested file recurses deeply.
const STACK_BYTES: usize = 2 << 30;

fn main() -> ExitCode {
    let worker = std::thread::Builder::new()
        .name("gradc".into())
        .stack_size(STACK_BYTES)
        .spawn(gradc::cli::main);
    match worker.map(|handle| handle.join()) {
        Ok(Ok(code)) => code,
        _ => {
            eprintln!("error: internal error (please report it with the input file)");
            ExitCode::from(101)
        }
    }
}
