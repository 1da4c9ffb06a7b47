//! Compiles `grammar/loss.lalrpop` into the parser used by `src/syntax`.
fn main() {
    println!("cargo:rerun-if-changed=grammar");
    lalrpop::Configuration::new()
        .set_in_dir("grammar")
        .process()
        .expect("lalrpop grammar failed to compile");
}
