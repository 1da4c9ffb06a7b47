//! The Rust API in one page: compile a `.loss` model, bind data by name, evaluate the
//! loss, outputs and gradients, then run a fast training loop through a prepared call,
//! or let `train::fit` run one.
//!
//! `cargo run --release --example rust_api`

use gradc::api::{CompileOptions, Engine, Model};
use gradc::jit::ArgData;
use gradc::train::{Optimizer, Rule};
use gradc::Tensor;

const SOURCE: &str = "
input  x: [B, D]
input  labels: int[B]
param  W: [D, K]
param  b: [K]

let logits = x @ W + b
output probs = softmax(logits, 1)
loss = -mean(pick(log_softmax(logits, 1), labels))
";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Compile once: parse, check, differentiate, simplify, JIT forward and gradient.
    let model = Model::from_source(SOURCE)?;
    println!(
        "args {:?}, params {:?}",
        model.arg_names(),
        model.param_names()
    );

    // 2. Bind data by name; shapes bind the dimensions (B = 4, D = 3, K = 2 here) and
    //    every length, dimension and index is checked: bad data is an `Err`.
    let (b, d, k) = (4, 3, 2);
    let x: Vec<f64> = (0..b * d).map(|i| (i as f64 * 0.37).sin()).collect();
    let labels = vec![0, 1, 1, 0];
    let mut w = vec![0.0; d * k];
    let mut bias = vec![0.0; k];
    let bind = |w: &[f64], bias: &[f64]| {
        model.bind(vec![
            ("x".into(), Tensor::real(vec![b, d], x.clone())),
            ("labels".into(), Tensor::int(vec![b], labels.clone())),
            ("W".into(), Tensor::real(vec![d, k], w.to_vec())),
            ("b".into(), Tensor::real(vec![k], bias.to_vec())),
        ])
    };
    let bound = bind(&w, &bias)?;
    let forward = model.forward(&bound)?;
    println!(
        "loss {:.6}, outputs {:?}",
        forward.loss, forward.outputs[0].0
    );

    // Wrong data is reported by name, before any native code runs.
    let bad = model.bind(vec![
        ("x".into(), Tensor::real(vec![b, d], x.clone())),
        ("labels".into(), Tensor::int(vec![b], vec![0, 1, 7, 0])),
        ("W".into(), Tensor::real(vec![d, k], w.clone())),
        ("b".into(), Tensor::real(vec![k], bias.clone())),
    ]);
    println!("bad labels: {}", bad.unwrap_err());

    // 3. Gradients into caller-owned buffers (params in declaration order).
    let mut grad_w = vec![0.0; d * k];
    let mut grad_b = vec![0.0; k];
    let loss = model.value_and_grad(&bound, &mut [&mut grad_w, &mut grad_b])?;
    println!("loss {loss:.6}, dW {grad_w:?}");

    // 4. The fast path: prepare once for these sizes, then pass slices in declaration
    //    order. Only lengths and indices are checked per call; nothing is allocated.
    let mut call = model.prepare(&bound.dims)?;
    let mut sgd = Optimizer::new(Rule::Sgd, 0.5); // or Rule::Adam, as `gradc train` has
    for step in 0..200 {
        let loss = call.value_and_grad(
            &[
                ArgData::Real(&x),
                ArgData::Int(&labels),
                ArgData::Real(&w),
                ArgData::Real(&bias),
            ],
            &mut [&mut grad_w, &mut grad_b],
        )?;
        sgd.step(&mut [&mut w, &mut bias], &[&grad_w, &grad_b]);
        if step % 50 == 0 {
            println!("step {step:3}: loss {loss:.6}");
        }
    }

    // 5. The same model on the reference interpreter agrees.
    let reference = Model::with_options(
        SOURCE,
        CompileOptions {
            engine: Engine::Interpreter,
            ..CompileOptions::default()
        },
    )?;
    let trained = bind(&w, &bias)?;
    let (jit_loss, interp_loss) = (
        model.forward(&trained)?.loss,
        reference.forward(&trained)?.loss,
    );
    println!("trained loss: jit {jit_loss:.12}, interpreter {interp_loss:.12}");

    // 6. `Model` is Send + Sync: share it across threads.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| model.forward(&trained).map(|f| f.loss));
        }
    });

    // 7. Or let `train::fit` run the whole loop (`gradc train`'s); for a problem this
    //    small, L-BFGS on all the data. The trained params are left in the bound data.
    let mut start = bind(&vec![0.0; d * k], &vec![0.0; k])?;
    let settings = gradc::train::Settings::lbfgs(30);
    let fitted = gradc::train::fit(&model, &mut start, &settings, |_| Ok(()))?;
    println!(
        "L-BFGS, 30 steps: loss {:.3e} (SGD's 200 steps: {jit_loss:.3e})",
        fitted.last_loss
    );
    Ok(())
}
