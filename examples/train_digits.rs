//! Training on real data from Rust: `examples/digits.loss` (a one-hidden-layer
//! classifier) on the handwritten digits of `examples/data/digits.csv`, with Adam, through
//! a prepared call (no allocation and no re-validation of shapes per step).
//!
//! ```text
//! cargo run --release --example train_digits                  # 300 steps, then the accuracies
//! cargo run --release --example train_digits -- --steps 100 --write-data digits.data.json
//! cargo run --release --example train_digits -- --fit          # the same with train::fit
//! ```
//!
//! `--fit` trains with `gradc::train::fit`, the loop of `gradc train`, instead of the loop
//! written out here: the same steps, so the same params.
//!
//! `--write-data PATH` also writes the standardised data with the initial params as a
//! `DATA.json`, for the command line: `gradc train examples/digits.loss --data PATH`.

use gradc::api::Model;
use gradc::data::SplitMix64;
use gradc::jit::ArgData;
use gradc::train::{self, Optimizer, Rule, Settings};
use gradc::Tensor;

const PIXELS: usize = 64;
const HIDDEN: usize = 32;
const CLASSES: usize = 10;

/// Images (standardised pixels, one row each) and their digits.
struct Split {
    x: Vec<f64>,
    labels: Vec<i64>,
}

impl Split {
    fn new() -> Split {
        Split {
            x: Vec::new(),
            labels: Vec::new(),
        }
    }

    fn rows(&self) -> usize {
        self.labels.len()
    }
}

/// The data set as training and held-out rows (every fifth row is held out), each
/// pixel standardised by the training rows' mean and standard deviation.
fn load_digits(path: &str) -> Result<(Split, Split), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let (mut train, mut test) = (Split::new(), Split::new());
    for (line_no, line) in text.lines().enumerate() {
        let fields: Vec<f64> = line
            .split(',')
            .map(|field| field.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{path}:{}: {e}", line_no + 1))?;
        if fields.len() != PIXELS + 1 {
            return Err(format!("{path}:{}: expected 65 fields", line_no + 1));
        }
        let split = if line_no % 5 == 4 {
            &mut test
        } else {
            &mut train
        };
        split.x.extend(&fields[..PIXELS]);
        split.labels.push(fields[PIXELS] as i64);
    }
    for pixel in 0..PIXELS {
        let column = || train.x.iter().skip(pixel).step_by(PIXELS);
        let mean = column().sum::<f64>() / train.rows() as f64;
        let variance = column().map(|v| (v - mean).powi(2)).sum::<f64>() / train.rows() as f64;
        // A pixel that is blank in every training image stays 0.
        let scale = if variance > 0.0 { variance.sqrt() } else { 1.0 };
        for split in [&mut train, &mut test] {
            for v in split.x.iter_mut().skip(pixel).step_by(PIXELS) {
                *v = (*v - mean) / scale;
            }
        }
    }
    Ok((train, test))
}

/// The params in declaration order (`W1, b1, W2, b2`): weights drawn uniformly with
/// variance 1 / fan-in, biases 0.
fn initial_params(seed: u64) -> Vec<Vec<f64>> {
    let mut rng = SplitMix64::new(seed);
    let mut uniform = |n: usize, fan_in: usize| -> Vec<f64> {
        let half_width = (3.0 / fan_in as f64).sqrt();
        (0..n)
            .map(|_| (2.0 * rng.next_f64() - 1.0) * half_width)
            .collect()
    };
    vec![
        uniform(PIXELS * HIDDEN, PIXELS),
        vec![0.0; HIDDEN],
        uniform(HIDDEN * CLASSES, HIDDEN),
        vec![0.0; CLASSES],
    ]
}

/// The arguments of `digits.loss` by name, as tensors.
fn named_tensors(train: &Split, test: &Split, params: &[Vec<f64>]) -> Vec<(String, Tensor)> {
    let shapes = [
        vec![PIXELS, HIDDEN],
        vec![HIDDEN],
        vec![HIDDEN, CLASSES],
        vec![CLASSES],
    ];
    let mut named = vec![
        (
            "x".into(),
            Tensor::real(vec![train.rows(), PIXELS], train.x.clone()),
        ),
        (
            "labels".into(),
            Tensor::int(vec![train.rows()], train.labels.clone()),
        ),
        (
            "x_test".into(),
            Tensor::real(vec![test.rows(), PIXELS], test.x.clone()),
        ),
        (
            "labels_test".into(),
            Tensor::int(vec![test.rows()], test.labels.clone()),
        ),
    ];
    for ((name, shape), values) in ["W1", "b1", "W2", "b2"].iter().zip(shapes).zip(params) {
        named.push((name.to_string(), Tensor::real(shape, values.clone())));
    }
    named
}

/// What training reports.
struct Trained {
    first_loss: f64,
    last_loss: f64,
    train_accuracy: f64,
    test_accuracy: f64,
}

/// Trains `digits.loss` for `steps` Adam steps (learning rate 0.01, the whole training
/// split each step), printing the loss every `every` steps (never if 0).
fn train(train: &Split, test: &Split, steps: usize, every: usize) -> Result<Trained, String> {
    let model = Model::from_source(include_str!("digits.loss")).map_err(|e| e.to_string())?;
    let mut params = initial_params(7);
    // Binding checks every name, shape and label once and gives the dimension sizes.
    let bound = model
        .bind(named_tensors(train, test, &params))
        .map_err(|e| e.to_string())?;
    let mut call = model.prepare(&bound.dims).map_err(|e| e.to_string())?;
    let mut grads: Vec<Vec<f64>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let mut optimizer = Optimizer::new(Rule::Adam, 0.01);
    let (mut first_loss, mut last_loss) = (f64::NAN, f64::NAN);
    for step in 0..=steps {
        let mut args = vec![
            ArgData::Real(&train.x),
            ArgData::Int(&train.labels),
            ArgData::Real(&test.x),
            ArgData::Int(&test.labels),
        ];
        args.extend(params.iter().map(|p| ArgData::Real(p)));
        if step == steps {
            // The last step only measures: the loss and the outputs at the trained params.
            last_loss = call.forward(&args).map_err(|e| e.to_string())?;
            if steps == 0 {
                first_loss = last_loss;
            }
            break;
        }
        let mut grad_slices: Vec<&mut [f64]> = grads.iter_mut().map(|g| g.as_mut_slice()).collect();
        let loss = call
            .value_and_grad(&args, &mut grad_slices)
            .map_err(|e| e.to_string())?;
        if step == 0 {
            first_loss = loss;
        }
        if every > 0 && step % every == 0 {
            println!("step {step:4}  loss {loss:.6}");
        }
        let mut param_slices: Vec<&mut [f64]> =
            params.iter_mut().map(|p| p.as_mut_slice()).collect();
        let grad_views: Vec<&[f64]> = grads.iter().map(|g| g.as_slice()).collect();
        optimizer.step(&mut param_slices, &grad_views);
    }
    let output = |name: &str| {
        call.outputs()
            .find(|(output, _)| *output == name)
            .map(|(_, values)| values[0])
            .ok_or(format!("no output `{name}`"))
    };
    Ok(Trained {
        first_loss,
        last_loss,
        train_accuracy: output("train_accuracy")?,
        test_accuracy: output("test_accuracy")?,
    })
}

/// [`train`] by `gradc::train::fit`: the loop of `gradc train`, reporting every `every`
/// steps.
fn train_with_fit(
    train: &Split,
    test: &Split,
    steps: usize,
    every: usize,
) -> Result<Trained, String> {
    let model = Model::from_source(include_str!("digits.loss")).map_err(|e| e.to_string())?;
    let mut bound = model
        .bind(named_tensors(train, test, &initial_params(7)))
        .map_err(|e| e.to_string())?;
    let settings = Settings {
        report_every: every,
        ..Settings::new(Rule::Adam, 0.01, steps)
    };
    let mut first = None;
    let mut accuracies = (f64::NAN, f64::NAN);
    let fitted = train::fit(&model, &mut bound, &settings, |report| {
        first.get_or_insert(report.loss);
        let output = |name: &str| report.outputs.iter().find(|(n, _)| *n == name).map(|o| o.1);
        accuracies = (
            output("train_accuracy").unwrap_or(f64::NAN),
            output("test_accuracy").unwrap_or(f64::NAN),
        );
        if every > 0 && report.step < steps {
            println!("step {:4}  loss {:.6}", report.step, report.loss);
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok(Trained {
        first_loss: first.unwrap_or(f64::NAN),
        last_loss: fitted.last_loss,
        train_accuracy: accuracies.0,
        test_accuracy: accuracies.1,
    })
}

/// Writes the data with the initial params as a `DATA.json` for `gradc train`.
fn write_data(path: &str, train: &Split, test: &Split) -> Result<(), String> {
    let object: serde_json::Map<String, serde_json::Value> =
        named_tensors(train, test, &initial_params(7))
            .into_iter()
            .map(|(name, tensor)| (name, gradc::data::tensor_to_json(&tensor)))
            .collect();
    let text = gradc::data::format_json(&serde_json::Value::Object(object));
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {path}: {e}"))
}

fn main() -> Result<(), String> {
    let mut steps = 300;
    let mut write_to = None;
    let mut with_fit = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--fit" {
            with_fit = true;
            continue;
        }
        match (arg.as_str(), args.next()) {
            ("--steps", Some(n)) => steps = n.parse().map_err(|e| format!("--steps: {e}"))?,
            ("--write-data", Some(path)) => write_to = Some(path),
            _ => return Err("usage: train_digits [--steps N] [--write-data PATH] [--fit]".into()),
        }
    }
    let (train_rows, test_rows) = load_digits("examples/data/digits.csv")?;
    println!(
        "{} training images, {} held out",
        train_rows.rows(),
        test_rows.rows()
    );
    if let Some(path) = write_to {
        write_data(&path, &train_rows, &test_rows)?;
        println!("wrote the data with the initial params to {path}");
    }
    let start = std::time::Instant::now();
    let trained = if with_fit {
        train_with_fit(&train_rows, &test_rows, steps, 50)?
    } else {
        train(&train_rows, &test_rows, steps, 50)?
    };
    println!(
        "{steps} steps in {:.0} ms, compiling included",
        start.elapsed().as_secs_f64() * 1e3
    );
    println!(
        "loss {:.6} -> {:.6}; accuracy: training {:.1}%, held out {:.1}%",
        trained.first_loss,
        trained.last_loss,
        100.0 * trained.train_accuracy,
        100.0 * trained.test_accuracy
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classifier_learns_digits_it_has_not_seen() {
        let (train_rows, test_rows) = load_digits("examples/data/digits.csv").unwrap();
        assert_eq!((train_rows.rows(), test_rows.rows()), (1438, 359));
        let trained = train(&train_rows, &test_rows, 50, 0).unwrap();
        // At the random start the loss is about ln 10 and a tenth of the digits is right.
        assert!(trained.first_loss > 1.5, "{}", trained.first_loss);
        assert!(trained.last_loss < 0.2, "{}", trained.last_loss);
        assert!(trained.test_accuracy > 0.9, "{}", trained.test_accuracy);
        assert!(trained.train_accuracy >= trained.test_accuracy - 0.02);
        // `train::fit` takes the same steps: the same params, bit for bit.
        let fitted = train_with_fit(&train_rows, &test_rows, 50, 0).unwrap();
        assert_eq!(fitted.first_loss, trained.first_loss);
        assert_eq!(fitted.last_loss, trained.last_loss);
        assert_eq!(fitted.test_accuracy, trained.test_accuracy);
    }
}
