//! The shipped examples: their derived gradients (`--emit grad` and `--emit grad-ir`)
//! pinned as snapshots, each checked by hand against the textbook result, and their IR
//! verified.

use std::path::Path;

const EXAMPLES: &[&str] = &[
    "neuron",
    "logreg",
    "mlp",
    "classifier",
    "glove",
    "nlm",
    "deep",
];

fn compile(name: &str) -> gradc::driver::Compiled {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.loss"));
    let source = std::fs::read_to_string(&path).unwrap();
    gradc::driver::compile(&source).unwrap_or_else(|d| panic!("{name}: {d:?}"))
}

#[test]
fn gradients_of_every_example() {
    for name in EXAMPLES {
        let compiled = compile(name);
        for func in [&compiled.forward, &compiled.grad_raw, &compiled.grad] {
            if let Err(problems) = gradc::ir::verify(func) {
                panic!("{name}: {problems:#?}\n{}", gradc::ir::print_function(func));
            }
        }
        insta::assert_snapshot!(format!("{name}_grad"), compiled.grad_equations());
        insta::assert_snapshot!(format!("{name}_grad_ir"), compiled.grad_ir_text());
    }
}
