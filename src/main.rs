//! The `gradc` command line. (STUB: the CLI lands with the driver work.)
fn main() {}
