//! The README's snapshot workflow, run as written: a user's crate pins the derived
//! gradients of a `.loss` file with `insta`.

#[test]
fn classifier_gradients() {
    let source = std::fs::read_to_string("examples/classifier.loss").unwrap();
    let compiled = gradc::driver::compile(&source).expect("the file compiles");
    insta::assert_snapshot!(compiled.grad_equations());
}

#[test]
fn the_readme_shows_the_snapshot_it_pins() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let source = std::fs::read_to_string("examples/classifier.loss").unwrap();
    let equations = gradc::driver::compile(&source).unwrap().grad_equations();
    assert!(
        readme.contains(&equations),
        "README's example snapshot is out of date:\n{equations}"
    );
}
