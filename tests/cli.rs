//! The command line, run as a user runs it: the built `gradc` binary on the shipped
//! examples and on broken files and data.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXAMPLES: &[&str] = &[
    "neuron",
    "logreg",
    "mlp",
    "classifier",
    "glove",
    "nlm",
    "deep",
];

fn gradc(args: &[&str]) -> Output {
    gradc_with_env(args, &[])
}

/// [`gradc`] with these environment variables set.
fn gradc_with_env(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gradc"))
        .args(args)
        .envs(vars.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the gradc binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn example(name: &str) -> (String, String) {
    (
        format!("examples/{name}.loss"),
        format!("examples/{name}.data.json"),
    )
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "gradc failed: {}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", stdout(out)))
}

/// Every number in a JSON value, flattened in order.
fn numbers(v: &Value) -> Vec<f64> {
    match v {
        Value::Number(n) => vec![n.as_f64().unwrap()],
        Value::Array(items) => items.iter().flat_map(numbers).collect(),
        Value::Object(map) => map.values().flat_map(numbers).collect(),
        Value::String(s) => vec![s.parse::<f64>().unwrap_or(f64::NAN)],
        _ => vec![],
    }
}

#[test]
fn check_accepts_every_example() {
    for name in EXAMPLES {
        let (file, _) = example(name);
        let out = gradc(&["check", &file]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{name}: check prints nothing on success");
    }
}

#[test]
fn run_prints_loss_every_gradient_and_the_outputs() {
    for name in EXAMPLES {
        let (file, data) = example(name);
        let result = json(&gradc(&["run", &file, "--data", &data]));
        let object = result.as_object().unwrap();
        let keys: Vec<&str> = object.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["loss", "grad", "outputs"], "{name}");
        assert!(result["loss"].is_number(), "{name}: loss is a number");
        let source = std::fs::read_to_string(&file).unwrap();
        let params: Vec<&str> = source
            .lines()
            .filter_map(|l| l.trim().strip_prefix("param"))
            .map(|rest| rest.split(':').next().unwrap().trim())
            .collect();
        let grads: Vec<&str> = result["grad"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(grads, params, "{name}: one gradient per param, in order");
    }
}

#[test]
fn jit_and_interpreter_agree_on_every_example() {
    for name in EXAMPLES {
        let (file, data) = example(name);
        let jit = numbers(&json(&gradc(&["run", &file, "--data", &data])));
        let interp = numbers(&json(&gradc(&["run", &file, "--data", &data, "--interp"])));
        assert_eq!(jit.len(), interp.len(), "{name}");
        for (a, b) in jit.iter().zip(&interp) {
            let scale = a.abs().max(b.abs()).max(1e-300);
            // An infinity agrees only with itself.
            let agree = if a.is_finite() && b.is_finite() {
                (a - b).abs() <= 1e-12 * scale.max(1.0)
            } else {
                a == b || (a.is_nan() && b.is_nan())
            };
            assert!(agree, "{name}: {a} vs {b}");
        }
    }
}

#[test]
fn run_forward_omits_the_gradient() {
    let (file, data) = example("classifier");
    let result = json(&gradc(&["run", &file, "--data", &data, "--forward"]));
    let keys: Vec<&String> = result.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["loss", "outputs"]);
    let probs = result["outputs"]["probs"].as_array().unwrap();
    for row in probs {
        let total: f64 = numbers(row).iter().sum();
        assert!((total - 1.0).abs() < 1e-12, "softmax rows sum to 1");
    }
}

#[test]
fn outputs_is_an_empty_object_when_there_are_none() {
    let (file, data) = example("deep");
    let result = json(&gradc(&["run", &file, "--data", &data]));
    assert_eq!(result["outputs"], serde_json::json!({}));
}

#[test]
fn gradcheck_passes_on_every_example_at_its_data_and_at_random_points() {
    for name in EXAMPLES {
        let (file, data) = example(name);
        let out = gradc(&["gradcheck", &file, "--data", &data]);
        assert!(
            out.status.success(),
            "{name}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        for seed in ["1", "2"] {
            let out = gradc(&["gradcheck", &file, "--seed", seed]);
            assert!(
                out.status.success(),
                "{name} seed {seed}: {}{}",
                stdout(&out),
                stderr(&out)
            );
        }
    }
}

#[test]
fn gradcheck_at_a_random_point_says_its_sizes_and_without_params_is_inconclusive() {
    let file = scratch(
        "gc_sizes.loss",
        "input x: [N, M]
param w: [M]
loss = sum(x @ w)
",
    );
    let text = stdout(&gradc(&["gradcheck", path_str(&file), "--seed", "3"]));
    let sizes = text.lines().next().unwrap_or("");
    let parts: Vec<&str> = sizes
        .strip_prefix("random point (seed 3): N = ")
        .unwrap_or_else(|| panic!("{text}"))
        .split(", M = ")
        .collect();
    assert!(
        parts.len() == 2 && parts.iter().all(|n| n.parse::<usize>().is_ok()),
        "{text}"
    );
    let file = scratch(
        "gc_no_param.loss",
        "input x: [N]
loss = sum(x ^ 2)
",
    );
    let out = gradc(&["gradcheck", path_str(&file)]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).ends_with(
            "gradcheck inconclusive: the model has no `param`, so no gradient to check\n"
        ),
        "{}",
        stdout(&out)
    );
}

#[test]
fn every_emit_is_deterministic() {
    for name in EXAMPLES {
        let (file, _) = example(name);
        for stage in ["ast", "ir", "grad-ir", "grad", "clif"] {
            let first = gradc(&["compile", &file, "--emit", stage]);
            assert!(first.status.success(), "{name} {stage}: {}", stderr(&first));
            assert!(
                !stdout(&first).is_empty(),
                "{name} {stage} prints something"
            );
            let second = gradc(&["compile", &file, "--emit", stage]);
            assert_eq!(stdout(&first), stdout(&second), "{name} {stage}");
        }
    }
}

#[test]
fn emit_grad_has_one_equation_per_param() {
    let (file, _) = example("classifier");
    let text = stdout(&gradc(&["compile", &file, "--emit", "grad"]));
    for param in ["W1", "b1", "W2", "b2"] {
        let line = format!("d loss / d {param} = ");
        assert_eq!(text.matches(&line).count(), 1, "{param} in:\n{text}");
    }
}

#[test]
fn compile_summary_reports_sizes_without_swell() {
    for name in EXAMPLES {
        let (file, _) = example(name);
        let out = gradc(&["compile", &file]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let text = stdout(&out);
        let counts = |label: &str| -> Vec<usize> {
            let line = text.lines().find(|l| l.starts_with(label)).unwrap();
            line.split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect()
        };
        let forward = counts("forward IR:")[1];
        let gradient = counts("gradient IR:")[1];
        assert!(
            gradient <= 4 * forward,
            "{name}: {gradient} > 4 x {forward}\n{text}"
        );
        assert!(text.contains("compiled in"), "{name}");
    }
}

#[test]
fn compile_writes_to_a_file_with_o() {
    let (file, _) = example("neuron");
    let out_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("neuron.grad.txt");
    let out = gradc(&[
        "compile",
        &file,
        "--emit",
        "grad",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "");
    let written = std::fs::read_to_string(&out_path).unwrap();
    let printed = stdout(&gradc(&["compile", &file, "--emit", "grad"]));
    assert_eq!(written, printed);
}

#[test]
fn errors_in_the_file_are_reported_with_location_and_caret() {
    let path = scratch("bad.loss", "param w\nlet a = w + z\nloss = a\n");
    let out = gradc(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let first = err.lines().next().unwrap();
    let expected = format!("{}:2:13: error: ", path.display());
    assert!(first.starts_with(&expected), "{err}");
    assert!(err.contains("let a = w + z"), "{err}");
    assert!(err.contains('^'), "{err}");
    for command in [&["compile"][..], &["gradcheck"][..]] {
        let mut args = command.to_vec();
        args.push(path.to_str().unwrap());
        let out = gradc(&args);
        assert_eq!(out.status.code(), Some(1), "{command:?}");
        assert!(stderr(&out).starts_with(&expected), "{command:?}");
    }
}

#[test]
fn warnings_do_not_change_the_exit_status() {
    let path = scratch("unused.loss", "param w\nparam unused\nloss = w * w\n");
    let out = gradc(&["check", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(": warning: "), "{}", stderr(&out));
    let data = scratch("unused.data.json", r#"{"w": 3, "unused": 1}"#);
    let result = json(&gradc(&[
        "run",
        path.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]));
    assert_eq!(result["grad"]["unused"].as_f64(), Some(0.0));
    assert_eq!(result["grad"]["w"].as_f64(), Some(6.0));
}

#[test]
fn call_time_errors_name_the_offending_input() {
    let (file, _) = example("classifier");
    let cases = [
        (r#"{"x": [[1.0]]}"#, "labels"),
        (
            r#"{"x": [[1,2],[3,4]], "labels": [0, 1.5], "W1": [[1],[2]], "b1": [0], "W2": [[1]], "b2": [0]}"#,
            "labels",
        ),
        (
            r#"{"x": [[1,2],[3,4]], "labels": [0, 7], "W1": [[1],[2]], "b1": [0], "W2": [[1]], "b2": [0]}"#,
            "labels",
        ),
        (
            r#"{"x": [[1,2],[3,4]], "labels": [0, 0], "W1": [[1],[2],[3]], "b1": [0], "W2": [[1]], "b2": [0]}"#,
            "W1",
        ),
        (
            r#"{"x": [[1,2],[3,4]], "labels": [0, 0], "W1": [[1],[2]], "b1": [0], "W2": [[1]], "b2": [0], "extra": 1}"#,
            "extra",
        ),
    ];
    for (k, (data, name)) in cases.iter().enumerate() {
        let data_path = scratch(&format!("bad{k}.data.json"), data);
        let out = gradc(&["run", &file, "--data", data_path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "case {k}");
        let err = stderr(&out);
        assert!(err.starts_with("error: "), "case {k}: {err}");
        assert!(err.contains(name), "case {k} should name `{name}`: {err}");
        assert_eq!(stdout(&out), "", "case {k}");
    }
}

#[test]
fn non_finite_values_are_printed_as_strings() {
    let path = scratch("inf.loss", "input x\nparam w\nloss = log(w * x)\n");
    let data = scratch("inf.data.json", r#"{"x": 0, "w": 1}"#);
    let out = gradc(&[
        "run",
        path.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    let result = json(&out);
    assert_eq!(result["loss"], Value::String("-Infinity".into()));
    assert!(matches!(&result["grad"]["w"], Value::String(s) if s == "Infinity" || s == "NaN"));
}

/// A learning rate that cannot train and a tolerance no error can be compared with are
/// refused before anything runs, naming the flag.
#[test]
fn a_nonsensical_learning_rate_or_tolerance_is_an_error() {
    let (file, data) = example("classifier");
    for lr in ["-1", "0", "nan", "inf"] {
        let out = gradc(&["train", &file, "--data", &data, "--lr", lr]);
        assert!(!out.status.success(), "--lr {lr} was accepted");
        assert!(stderr(&out).contains("--lr"), "{}", stderr(&out));
        assert!(
            stdout(&out).is_empty(),
            "--lr {lr} trained: {}",
            stdout(&out)
        );
    }
    let out = gradc(&["gradcheck", &file, "--tolerance", "nan"]);
    assert!(!out.status.success(), "--tolerance nan was accepted");
    assert!(stderr(&out).contains("--tolerance"), "{}", stderr(&out));
}

/// The losses `train` printed: `step N  loss L ...`, one line each.
fn printed_losses(out: &Output) -> Vec<f64> {
    (stdout(out).lines())
        .map(|line| line.split_whitespace().nth(3).unwrap().parse().unwrap())
        .collect()
}

/// `run --forward` at the params `train` wrote gives the last loss it printed.
fn assert_run_gives(file: &str, trained: &Path, printed: f64) {
    let data = trained.to_str().unwrap();
    let loss = json(&gradc(&["run", file, "--data", data, "--forward"]))["loss"]
        .as_f64()
        .unwrap();
    assert!(
        (loss - printed).abs() <= 1e-9 * loss.abs(),
        "{loss} vs {printed}"
    );
}

#[test]
fn train_lowers_the_loss_and_writes_params_that_run_reproduces() {
    let (file, data) = example("classifier");
    let trained = Path::new(env!("CARGO_TARGET_TMPDIR")).join("classifier.trained.json");
    let out = gradc(&[
        "train",
        &file,
        "--data",
        &data,
        "--steps",
        "50",
        "--lr",
        "0.05",
        "-o",
        trained.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let losses = printed_losses(&out);
    assert!(losses.len() >= 2);
    assert!(losses.last().unwrap() < &(0.5 * losses[0]), "{losses:?}");
    assert_run_gives(&file, &trained, *losses.last().unwrap());
    // A folder that is not there is reported before any training.
    let nowhere = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no/such/folder/out.json");
    let out = gradc(&[
        "train",
        &file,
        "--data",
        &data,
        "-o",
        nowhere.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty() && stderr(&out).contains("there is no folder"));
    for optimizer in ["sgd", "adam"] {
        let out = gradc(&[
            "train",
            &file,
            "--data",
            &data,
            "--steps",
            "5",
            "--optimizer",
            optimizer,
        ]);
        assert!(out.status.success(), "{optimizer}: {}", stderr(&out));
    }
}

/// `--schedule`, `--warmup`, `--weight-decay` and `--clip-norm` on `loss = w^2` (gradient
/// 2w) with SGD follow the update rules worked out here step by step.
#[test]
fn train_schedules_decays_and_clips_as_documented() {
    let file = scratch("train_square.loss", "param w\nloss = w^2\n");
    let data = scratch("train_square.json", r#"{"w": 1}"#);
    let steps = 6;
    let train = |extra: &[&str]| {
        let (file, data) = (file.to_str().unwrap(), data.to_str().unwrap());
        let mut args = vec!["train", file, "--data", data, "--optimizer", "sgd"];
        args.extend(["--lr", "0.1", "--steps", "6", "--every", "1"]);
        args.extend(extra);
        let out = gradc(&args);
        assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
        out
    };
    // The learning rate of step k: warm-up over `warmup` steps, then the decay.
    let rate = |k: usize, warmup: usize, decay: &str| {
        if k < warmup {
            return 0.1 * (k + 1) as f64 / warmup as f64;
        }
        let done = (k - warmup) as f64 / (steps - warmup) as f64;
        match decay {
            "linear" => 0.1 * (1.0 - done),
            "cosine" => 0.05 * (1.0 + (std::f64::consts::PI * done).cos()),
            _ => 0.1,
        }
    };
    let check = |extra: &[&str], warmup: usize, decay: &str, lambda: f64, clip: f64| {
        let out = train(extra);
        let losses = printed_losses(&out);
        let mut w: f64 = 1.0;
        for (k, loss) in losses.iter().enumerate() {
            assert!(
                (loss - w * w).abs() <= 1e-9 * w * w,
                "{extra:?} step {k}: {loss} vs {}",
                w * w
            );
            let lr = rate(k, warmup, decay);
            let line = stdout(&out).lines().nth(k).unwrap().to_string();
            if k < steps && (warmup > 0 || decay != "constant") {
                let printed: f64 = line.split_whitespace().nth(5).unwrap().parse().unwrap();
                assert!((printed - lr).abs() < 1e-6, "{line}");
            }
            let g = 2.0 * w;
            w -= lr * (g * (clip / g.abs()).min(1.0)) + lr * lambda * w;
        }
        assert_eq!(losses.len(), steps + 1);
    };
    check(&[], 0, "constant", 0.0, f64::INFINITY);
    check(&["--schedule", "linear"], 0, "linear", 0.0, f64::INFINITY);
    check(
        &["--schedule", "cosine", "--warmup", "2"],
        2,
        "cosine",
        0.0,
        f64::INFINITY,
    );
    check(&["--warmup", "3"], 3, "constant", 0.0, f64::INFINITY);
    check(
        &["--weight-decay", "0.5"],
        0,
        "constant",
        0.5,
        f64::INFINITY,
    );
    check(&["--clip-norm", "1.5"], 0, "constant", 0.0, 1.5);
    // Without a schedule, no learning rate is printed (the output is as it was).
    assert!(!stdout(&train(&[])).contains("lr"));
    for bad in [
        ["--weight-decay", "-0.1"],
        ["--clip-norm", "0"],
        ["--schedule", "step"],
    ] {
        let (file, data) = (file.to_str().unwrap(), data.to_str().unwrap());
        let out = gradc(&["train", file, "--data", data, bad[0], bad[1]]);
        assert!(!out.status.success() && stdout(&out).is_empty(), "{bad:?}");
        assert!(stderr(&out).contains(bad[0]), "{}", stderr(&out));
    }
}

/// `--keep-min` / `--keep-max` write the params of the best report step. SGD on `w^2`
/// from 1 with rate 0.1 gives w = 0.8^k at step k, nearest 0.5 at step 3.
#[test]
fn train_keeps_the_params_of_the_best_report() {
    let file = scratch(
        "train_keep.loss",
        "input t\ninput u: [2]\nparam w\noutput dist = (w - t)^2\noutput v = w * u\nloss = w^2\n",
    );
    let data = scratch("train_keep.json", r#"{"w": 1, "t": 0.5, "u": [1, 2]}"#);
    let (file, data) = (file.to_str().unwrap(), data.to_str().unwrap());
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train_keep.out.json");
    let keep = |how: &str, name: &str| {
        let out = gradc(&[
            "train",
            file,
            "--data",
            data,
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
            "--steps",
            "6",
            "--every",
            "1",
            how,
            name,
            "-o",
            kept.to_str().unwrap(),
        ]);
        let loss = || {
            let written = json(&gradc(&["run", file, "--data", kept.to_str().unwrap()]));
            written["loss"].as_f64().unwrap()
        };
        (out, loss)
    };
    for (how, name, step) in [
        ("--keep-min", "dist", 3),
        ("--keep-max", "dist", 0),
        ("--keep-min", "loss", 6),
        ("--keep-max", "loss", 0),
    ] {
        let (out, loss) = keep(how, name);
        assert!(out.status.success(), "{}", stderr(&out));
        let (w, loss) = (0.8f64.powi(step), loss());
        assert!(
            (loss - w * w).abs() <= 1e-12,
            "{how} {name}: {loss} vs {}",
            w * w
        );
        let said = format!("wrote the params of step {step}, where `{name}` was");
        assert!(
            stderr(&out).contains(&said),
            "{how} {name}: {}",
            stderr(&out)
        );
    }
    // Only the values printed can be kept: not a non-scalar output, not an unknown name.
    for name in ["v", "nope"] {
        let (out, _) = keep("--keep-min", name);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("the values reported are `loss`, `dist`"),
            "{}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty());
    }
    let out = gradc(&["train", file, "--data", data, "--keep-max", "dist"]);
    assert!(!out.status.success() && stderr(&out).contains("--output"));
}

/// A model without params trains nothing, and says so (it still reports its loss).
#[test]
fn train_warns_when_there_is_nothing_to_train() {
    let file = scratch("train_no_params.loss", "input x: [N]\nloss = sum(x)\n");
    let data = scratch("train_no_params.json", r#"{"x": [1, 2]}"#);
    let (file, data) = (file.to_str().unwrap(), data.to_str().unwrap());
    let out = gradc(&["train", file, "--data", data, "--steps", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(printed_losses(&out), vec![3.0, 3.0]);
    assert!(
        stderr(&out).contains("warning: the model has no `param`"),
        "{}",
        stderr(&out)
    );
    let out = gradc(&[
        "train",
        &example("classifier").0,
        "--data",
        &example("classifier").1,
    ]);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    // A warm-up as long as the run never reaches the learning rate asked for.
    let (file, data) = example("classifier");
    let out = gradc(&[
        "train", &file, "--data", &data, "--steps", "5", "--warmup", "5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "warning: --warmup 5 is not below --steps 5: the learning rate never reaches --lr"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn train_prints_scalar_outputs_beside_the_loss() {
    let file = scratch(
        "train_outputs.loss",
        "param w\ninput t\ninput v: [N]\noutput distance = abs(w - t)\noutput scaled = w * v\n\
         loss = (w - t)^2\n",
    );
    let data = scratch("train_outputs.json", r#"{"w": 0, "t": 3, "v": [1, 2]}"#);
    let args = [
        "train",
        path_str(&file),
        "--data",
        path_str(&data),
        "--steps",
        "10",
    ];
    let out = gradc(
        &[
            &args[..],
            &["--optimizer", "sgd", "--lr", "0.1", "--every", "5"],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in &lines {
        // `step N  loss L  distance D`: the distance is the root of the loss; the
        // output that is not a scalar is not printed.
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            (words[2], words[4], words.len()),
            ("loss", "distance", 6),
            "{line}"
        );
        let loss: f64 = words[3].parse().unwrap();
        let distance: f64 = words[5].parse().unwrap();
        assert!((distance - loss.sqrt()).abs() < 1e-6, "{line}");
    }
    assert!(lines[0].ends_with("distance 3.000000"), "{}", lines[0]);
    // Non-finite and tiny values are printed as `run` would write them, and readable.
    let file = scratch(
        "train_outputs_edge.loss",
        "param w\ninput t\ninput v: [N]\noutput gap = log(w - w)\noutput tiny = (w + 1) * 1e-9\n\
         loss = (w - t)^2\n",
    );
    let out = gradc(&[
        "train",
        path_str(&file),
        "--data",
        path_str(&data),
        "--steps",
        "0",
    ]);
    assert!(
        stdout(&out).ends_with("gap -Infinity  tiny 1.000000e-9\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn train_stops_at_a_non_finite_loss_saying_why() {
    let file = scratch(
        "train_nan.loss",
        "input x: [B]\nparam w\nloss = mean(square(x * w - 1))\n",
    );
    let bad_data = scratch("train_nan.json", r#"{"x": [1, "NaN", 2, 3], "w": 0.5}"#);
    let good_data = scratch("train_fine.json", r#"{"x": [1, 2, 3], "w": 0.5}"#);
    let train = |data: &Path, extra: &[&str]| {
        let args = [
            "train",
            path_str(&file),
            "--data",
            path_str(data),
            "--steps",
            "20",
        ];
        gradc(&[&args[..], extra].concat())
    };
    for (data, extra, message) in [
        (
            &bad_data,
            &[][..],
            "the loss is NaN at step 0, at the starting params: check the data",
        ),
        // The first batch of one row is fine; the loss over all the data is not.
        (
            &bad_data,
            &["--batch", "1", "--seed", "3"],
            "the loss over all the data is NaN at step 0, at the starting params",
        ),
        (
            &good_data,
            &["--optimizer", "sgd", "--lr", "1e308"],
            "the loss is Infinity at step 1, after the last update: lower the learning rate",
        ),
    ] {
        let out = train(data, extra);
        assert_eq!(out.status.code(), Some(1), "{extra:?}");
        assert!(
            stderr(&out).contains(message),
            "{extra:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn train_in_minibatches_reports_the_loss_over_all_the_data() {
    let (file, data) = example("classifier");
    let trained = Path::new(env!("CARGO_TARGET_TMPDIR")).join("classifier.batches.json");
    let train = |extra: &[&str]| {
        let args = [
            "train", &file, "--data", &data, "--steps", "60", "--lr", "0.05",
        ];
        gradc(&[&args[..], extra].concat())
    };
    let out = train(&["--batch", "2", "-o", trained.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let losses = printed_losses(&out);
    assert_eq!(losses.len(), 7, "{losses:?}");
    assert!(losses[6] < 0.5 * losses[0], "{losses:?}");
    // The loss printed is over all six rows, as `run` computes it at the trained params.
    assert_run_gives(&file, &trained, losses[6]);
    // The order of the rows follows the seed, and only the seed.
    let seeded = |seed: &str| stdout(&train(&["--batch", "2", "--seed", seed]));
    assert_eq!(seeded("0"), stdout(&out));
    assert_ne!(seeded("1"), seeded("0"));
    assert_ne!(seeded("0"), stdout(&train(&[])));
    for (args, message) in [
        (&["--batch", "7"][..], "a batch of 7 rows, but B has 6"),
        (
            &["--batch", "2", "--batch-dim", "H"],
            "param `W1` has dimension H",
        ),
        (
            &["--batch", "2", "--batch-dim", "D"],
            "input `x` has dimension D on axis 1",
        ),
    ] {
        let out = train(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn bench_json_has_the_harness_keys_and_the_loss_run_prints() {
    let (loss_file, data) = example("neuron");
    let report = json(&gradc(&["bench", &loss_file, "--data", &data, "--json"]));
    let run = json(&gradc(&["run", &loss_file, "--data", &data]));
    assert_eq!(report["loss"], run["loss"], "{report}");
    for key in ["compile_ms", "forward_us", "value_and_grad_us"] {
        let t = report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("no {key}: {report}"));
        assert!(t > 0.0 && t.is_finite(), "{key} = {t}");
    }
    // The split of the compile adds up to it.
    let parts: f64 = ["pipeline_ms", "jit_ms", "first_call_ms"]
        .iter()
        .map(|k| report[k].as_f64().unwrap())
        .sum();
    let total = report["compile_ms"].as_f64().unwrap();
    assert!(
        (parts - total).abs() <= 1e-9 * total.max(1.0),
        "{parts} vs {total}"
    );
    // The harness lists how each system used the machine.
    let cpus = report["threads"]["cpus_available"].as_u64().unwrap_or(0);
    assert!(cpus >= 1, "{report}");
    assert!(report["threads"]["gradc_threads"].is_string(), "{report}");
    let threads = report["threads"]["count"].as_u64().unwrap_or(0);
    assert!((1..=cpus.min(2)).contains(&threads), "{report}");
    // Memory: the arena, and the whole process (which holds at least the arena).
    let arena = report["peak_memory_bytes"].as_u64().expect("arena bytes");
    let process = report["max_rss_bytes"].as_u64().expect("process bytes");
    assert!(process > arena && process > 1 << 20, "{report}");
}

#[test]
fn bench_json_prints_a_non_finite_loss_as_run_does() {
    let file = scratch("bench_nan.loss", "param x\nloss = log(x)\n");
    for (k, (x, name)) in [("-1", "NaN"), ("0", "-Infinity")].iter().enumerate() {
        let data = scratch(&format!("bench_nan{k}.json"), &format!(r#"{{"x": {x}}}"#));
        let args = ["--data", path_str(&data)];
        let report = json(&gradc(
            &[&["bench", path_str(&file), "--json"][..], &args].concat(),
        ));
        let run = json(&gradc(&[&["run", path_str(&file)][..], &args].concat()));
        assert_eq!(report["loss"], Value::String(name.to_string()), "{report}");
        assert_eq!(report["loss"], run["loss"], "{report}");
    }
}

#[test]
fn bench_json_says_when_gradc_runs_on_the_calling_thread_only() {
    let (loss_file, data) = example("neuron");
    let out = gradc_with_env(
        &["bench", &loss_file, "--data", &data, "--json"],
        &[("GRADC_THREADS", "1")],
    );
    let report = json(&out);
    assert_eq!(
        report["threads"]["gradc_threads"], "the calling thread only",
        "{report}"
    );
    assert_eq!(report["threads"]["count"], 1, "{report}");
    // A value that is not a count of threads is said, not ignored in silence.
    let out = gradc_with_env(
        &["bench", &loss_file, "--data", &data, "--json"],
        &[("GRADC_THREADS", "abc")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("warning: GRADC_THREADS=`abc` is not a number of threads; using "),
        "{stderr}"
    );
    assert!(json(&out)["threads"]["count"].as_u64().is_some());
}

#[test]
fn bench_reports_errors_and_warnings_like_every_command() {
    let (_, data) = example("neuron");
    let bad = scratch("bench_bad.loss", "param w: [3]\nloss = sum(w * q)\n");
    let out = gradc(&["bench", bad.to_str().unwrap(), "--data", &data, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("bench_bad.loss:2:16: error: unknown name `q`"),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    // Unreadable data with a broken file: the file's errors come first.
    let out = gradc(&["bench", bad.to_str().unwrap(), "--data", "no/such.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown name `q`"),
        "{}",
        stderr(&out)
    );
    let unused = scratch(
        "bench_warn.loss",
        "param w: [3]\nparam u\nloss = sum(w * w)\n",
    );
    let data = scratch("bench_warn.json", r#"{"w": [1, 2, 3], "u": 1}"#);
    let out = gradc(&[
        "bench",
        unused.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]);
    assert!(stderr(&out).contains("warning: param `u` does not affect the loss"));
    assert_eq!(json(&out)["loss"].as_f64(), Some(14.0));
}

/// Runs `gradc ARGS` and checks that it failed cleanly: exit status 1 (not a panic's
/// 101, an abort's 134 or a segfault's 139), nothing on stdout, one `error: ` message
/// containing every one of `parts`.
fn assert_clean_error(args: &[&str], parts: &[&str]) {
    let out = gradc(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert_eq!(stdout(&out), "", "{args:?}");
    for part in parts {
        assert!(
            err.contains(part),
            "{args:?} should mention {part:?}: {err}"
        );
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_huge_onehot_width_is_a_call_time_error_on_every_path() {
    // 2^62 columns once overflowed the JIT's sizes (a segfault), 10^11 failed to
    // allocate (an abort), i64::MAX overflowed a `Vec` capacity (a panic).
    let data = scratch("onehot.data.json", r#"{"lab": [1, 2], "w": 1}"#);
    let data = path_str(&data);
    for (k, width) in ["4611686018427387904", "100000000000", "2000000000"]
        .iter()
        .enumerate()
    {
        let file = scratch(
            &format!("onehot{k}.loss"),
            &format!("input lab: int[B]\nparam w\nloss = w * sum(onehot(lab, {width}))\n"),
        );
        let file = path_str(&file);
        let parts = ["`onehot` of `lab`", "too large", width, "B = 2"];
        assert_clean_error(&["run", file, "--data", data], &parts);
        assert_clean_error(&["run", file, "--data", data, "--forward"], &parts);
        assert_clean_error(&["run", file, "--data", data, "--interp"], &parts);
        assert_clean_error(&["gradcheck", file, "--data", data], &parts);
    }
    let file = scratch(
        "onehot_output.loss",
        "input lab: int[B]\nparam w\nloss = w\noutput o = onehot(lab, 9223372036854775807)\n",
    );
    assert_clean_error(
        &["run", path_str(&file), "--data", data],
        &["output `o`", "too large", "9223372036854775807"],
    );
}

#[test]
fn a_huge_literal_dimension_of_empty_data_is_a_call_time_error() {
    let data = scratch("empty.data.json", r#"{"x": [], "w": 1}"#);
    let data = path_str(&data);
    for (k, width) in ["4611686018427387904", "100000000000"].iter().enumerate() {
        for (j, body) in [
            "loss = w * sum(sum(x, 0))\n",
            "loss = w\noutput o = sum(x, 0)\n",
        ]
        .iter()
        .enumerate()
        {
            let file = scratch(
                &format!("empty{k}_{j}.loss"),
                &format!("input x: [N, {width}]\nparam w\n{body}"),
            );
            let file = path_str(&file);
            let parts = ["input `x`", "too large", width, "N = 0"];
            assert_clean_error(&["run", file, "--data", data], &parts);
            assert_clean_error(&["run", file, "--data", data, "--interp"], &parts);
        }
    }
}

#[test]
fn gradcheck_at_a_random_point_refuses_a_huge_param() {
    // 10^11 elements failed to allocate; 2^62 x 4 wrapped to 0 elements and "passed".
    for (k, shape) in ["[100000000000]", "[4611686018427387904, 4]"]
        .iter()
        .enumerate()
    {
        let file = scratch(
            &format!("huge_param{k}.loss"),
            &format!("param w: {shape}\nloss = sum(w)\n"),
        );
        assert_clean_error(
            &["gradcheck", path_str(&file)],
            &["param `w`", "too large", shape],
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn memory_the_host_cannot_give_is_an_error_on_every_path() {
    // 2 x 10^9 columns pass the size limit (2^31 elements) but need 16 GB, more than
    // the 4 GB of address space allowed here: the interpreter aborted.
    let file = scratch(
        "onehot_16gb.loss",
        "input l: int[B]\nparam w\nloss = w * sum(onehot(l, 1000000000))\n",
    );
    let data = scratch("onehot_16gb.json", r#"{"l": [0, 1], "w": 1}"#);
    for extra in [&[][..], &["--interp"], &["--interp", "--forward"]] {
        let script = format!(
            "ulimit -v 4000000 && exec \"$0\" run {} --data {} {}",
            path_str(&file),
            path_str(&data),
            extra.join(" ")
        );
        let out = Command::new("sh")
            .args(["-c", &script, env!("CARGO_BIN_EXE_gradc")])
            .output()
            .expect("sh runs");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert!(
            err.starts_with("error: cannot allocate 16000000000 bytes"),
            "{extra:?}: {err}"
        );
        assert_eq!(stdout(&out), "", "{extra:?}");
    }
}

#[test]
fn gradcheck_fails_a_nan_gradient_and_prints_the_real_error() {
    let zero = scratch("gc_zero.json", r#"{"x": 0}"#);
    let zero = path_str(&zero);
    // d/dx sqrt(x²) at 0 is NaN: that fails, and says so.
    let nan = scratch("gc_nan.loss", "param x\nloss = sqrt(x * x)\n");
    let out = gradc(&["gradcheck", path_str(&nan), "--data", zero]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}{err}", stdout(&out));
    assert!(
        err.contains("gradcheck failed") && err.contains("gradient NaN"),
        "{err}"
    );
    assert!(!stdout(&out).contains("passed"), "{}", stdout(&out));
    // At tolerance 0 the real error is printed, and what excused it.
    let smooth = scratch("gc_smooth.loss", "param x\nloss = log(x) + sqrt(x)\n");
    let point = scratch("gc_point.json", r#"{"x": 0.7}"#);
    let args = ["gradcheck", path_str(&smooth), "--data", path_str(&point)];
    let out = gradc(&[&args[..], &["--tolerance", "0"]].concat());
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!text.contains("0.000e0 <="), "{text}");
    if out.status.success() {
        assert!(
            text.contains("+ measured finite-difference noise"),
            "{text}"
        );
    }
}

#[test]
fn gradcheck_skips_a_point_on_a_kink() {
    // The verdict at a point, after checking that the command exited with status 0.
    let verdict_at = |loss: &str, source: &str, point: &str| {
        let file = scratch(loss, source);
        let out = gradc(&["gradcheck", path_str(&file), "--data", point]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
        text
    };
    let zero = scratch("gc_kink_zero.json", r#"{"x": 0}"#);
    // relu'(0) = 0 is the contract's value, which the average slope can't confirm.
    let text = verdict_at("gc_relu.loss", "param x\nloss = relu(x)\n", path_str(&zero));
    assert!(
        text.contains("1 element skipped: not smooth at the step of the finite differences"),
        "{text}"
    );
    // Nothing was compared: not called a pass (nothing exceeded the tolerance either).
    assert!(
        text.contains("gradcheck inconclusive") && !text.contains("passed"),
        "{text}"
    );
    // With another param compared, it is a pass.
    let point = scratch("gc_kink_point.json", r#"{"x": 0, "y": 0.5}"#);
    let source = "param x\nparam y\nloss = relu(x) + y * y\n";
    let text = verdict_at("gc_relu_and_square.loss", source, path_str(&point));
    assert!(text.contains("gradcheck passed"), "{text}");
}

#[test]
fn a_real_accepts_a_number_beyond_the_f64_range_as_an_infinity() {
    let file = scratch(
        "overflow.loss",
        "input x: [N]\ninput k: int[N]\nparam w\nloss = w * sum(x)\noutput o = x\n",
    );
    let file = path_str(&file);
    let data = scratch(
        "overflow.data.json",
        r#"{"x": [1e400, -1e400, 1e-400], "k": [2, 2.0, 0], "w": 1e400}"#,
    );
    let result = json(&gradc(&[
        "run",
        file,
        "--data",
        path_str(&data),
        "--forward",
    ]));
    assert_eq!(
        result["outputs"]["o"],
        serde_json::json!(["Infinity", "-Infinity", 0.0])
    );
    assert_eq!(result["loss"], Value::String("NaN".into()));
    // An int still takes integers only, and a syntax error after such a number is
    // reported at its position in the file.
    let data = scratch(
        "overflow_int.data.json",
        r#"{"x": [1, 2], "k": [1e400, 2], "w": 1}"#,
    );
    assert_clean_error(
        &["run", file, "--data", path_str(&data)],
        &["`k`", "integers"],
    );
    let data = scratch(
        "overflow_int2.data.json",
        r#"{"x": [1, 2], "k": [2.5, 2], "w": 1}"#,
    );
    assert_clean_error(&["run", file, "--data", path_str(&data)], &["`k`", "2.5"]);
    let data = scratch(
        "overflow_syntax.data.json",
        r#"{"x": [1e400, 2], "k": [1, 2] "w": 1}"#,
    );
    assert_clean_error(
        &["run", file, "--data", path_str(&data)],
        &["not valid JSON", "line 1 column 31"],
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_stdout_that_cannot_take_the_output_is_an_error() {
    let (loss, data) = example("logreg");
    for args in [
        vec!["run", &loss, "--data", &data],
        vec!["compile", &loss, "--emit", "grad-ir"],
        vec!["gradcheck", &loss, "--data", &data],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full opens");
        let out = Command::new(env!("CARGO_BIN_EXE_gradc"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(full)
            .output()
            .expect("the gradc binary runs");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("error: cannot write to stdout"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_reader_that_has_gone_is_not_an_error() {
    let (loss, data) = example("mlp");
    for args in [
        vec!["compile", &loss, "--emit", "clif"],
        vec!["gradcheck", &loss, "--data", &data],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gradc"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the gradc binary runs");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("gradc finishes");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

#[test]
fn maximum_and_minimum_order_signed_zeros_alike_in_both_engines() {
    // IEEE 754-2019: +0 is above -0. The interpreter once returned the first operand
    // at a tie, so `1 / maximum(-0, 0)` was -inf there and +inf in native code.
    let file = scratch(
        "signed_zeros.loss",
        "input a: [N]\ninput b: [N]\nparam w\n\
         output hi = maximum(a, b)\noutput lo = minimum(a, b)\n\
         output top = max(a)\noutput bottom = min(b)\n\
         loss = w * (sum(hi) + sum(lo)) + 1 / maximum(w, 0)\n",
    );
    let data = scratch(
        "signed_zeros.json",
        r#"{"a": [-0.0, 0.0, -0.0], "b": [0.0, -0.0, -0.0], "w": -0.0}"#,
    );
    let args = ["run", path_str(&file), "--data", path_str(&data)];
    let native = stdout(&gradc(&args));
    let interpreted = stdout(&gradc(&[&args[..], &["--interp"]].concat()));
    assert_eq!(native, interpreted);
    let result: Value = serde_json::from_str(&native).unwrap();
    let text = |v: &Value| v.to_string();
    assert_eq!(text(&result["outputs"]["hi"]), "[0.0,0.0,-0.0]");
    assert_eq!(text(&result["outputs"]["lo"]), "[-0.0,-0.0,-0.0]");
    assert_eq!(text(&result["outputs"]["top"]), "0.0");
    assert_eq!(text(&result["outputs"]["bottom"]), "-0.0");
    assert_eq!(result["loss"], Value::String("Infinity".into()));
}

#[test]
fn train_with_lbfgs_converges_says_so_and_refuses_options_it_has_no_use_for() {
    let (file, data) = example("logreg");
    let trained = Path::new(env!("CARGO_TARGET_TMPDIR")).join("logreg.lbfgs.json");
    let lbfgs = |extra: &[&str]| {
        let args = ["train", &file, "--data", &data, "--optimizer", "lbfgs"];
        gradc(&[&args[..], extra].concat())
    };
    // The example's data are separable, and its loss is written with `log(1 - p)`:
    // L-BFGS drives the loss down until that is NaN just beyond, and stops there.
    let out = lbfgs(&["--steps", "200", "--every", "5", "-o", path_str(&trained)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let losses = printed_losses(&out);
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
    assert!(*losses.last().unwrap() < 1e-3, "{losses:?}");
    assert!(
        stderr(&out).contains("warning: stopped at step ")
            && stderr(&out).contains("beyond these params the loss is NaN or infinite"),
        "{}",
        stderr(&out)
    );
    assert_run_gives(&file, &trained, *losses.last().unwrap());
    // On overlapping classes it converges: the last step printed is the one it stopped
    // at, and the gradient there is zero to rounding.
    let overlap = scratch(
        "logreg_overlap.json",
        // Each point twice, once with each label but the last: no line separates them.
        r#"{"X": [[0, 1, 0], [1, 0, 1], [2, 1, 0], [0, 1, 0], [1, 0, 1], [2, 1, 0], [3, 0, 0]],
            "y": [0, 1, 0, 1, 0, 1, 1], "w": [0, 0, 0], "b": 0}"#,
    );
    let out = gradc(&[
        "train",
        &file,
        "--data",
        path_str(&overlap),
        "--optimizer",
        "lbfgs",
        "--history",
        "5",
        "--steps",
        "500",
        "-o",
        path_str(&trained),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // "converged at step K (N loss and gradient evaluations): ..."
    let numbers_after = |marker: &str| -> Vec<usize> {
        let rest = text
            .split(marker)
            .nth(1)
            .unwrap_or_else(|| panic!("{text}"));
        (rest.split(':').next().unwrap_or_default())
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect()
    };
    let [stopped, evaluations] = numbers_after("converged at step ")[..] else {
        panic!("{text}")
    };
    assert!(stopped < 500);
    // One evaluation before the first step, then at least one a step.
    assert!(evaluations > stopped, "{text}");
    assert!(text.contains(&format!("step {stopped:>6}  loss")), "{text}");
    let gradient = json(&gradc(&["run", &file, "--data", path_str(&trained)]))["grad"].clone();
    for g in numbers(&gradient) {
        assert!(g.abs() < 1e-8, "{gradient}");
    }
    // Options that would change nothing are errors, before any training.
    // Given at all, even at their defaults.
    for (extra, option) in [
        (&["--lr", "0.1"][..], "--lr"),
        (&["--lr", "0.01"][..], "--lr"),
        (&["--schedule", "cosine"], "--schedule"),
        (&["--schedule", "constant"], "--schedule"),
        (&["--warmup", "3"], "--warmup"),
        (&["--warmup", "0"], "--warmup"),
        (&["--weight-decay", "0.1"], "--weight-decay"),
        (&["--weight-decay", "0"], "--weight-decay"),
        (&["--clip-norm", "1"], "--clip-norm"),
        (&["--batch", "2"], "--batch"),
    ] {
        let out = lbfgs(extra);
        assert_eq!(out.status.code(), Some(1), "{extra:?}");
        assert!(stdout(&out).is_empty());
        assert!(
            stderr(&out).contains(&format!("`{option}` does not apply to `--optimizer lbfgs`")),
            "{}",
            stderr(&out)
        );
    }
    let out = gradc(&["train", &file, "--data", &data, "--history", "5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`--history` is for `--optimizer lbfgs`"));
    // A history whose past steps could take gigabytes is said so.
    let wide = scratch(
        "lbfgs_wide.loss",
        "param w: [N]\nloss = sum(square(w - 1))\n",
    );
    let zeros = scratch(
        "lbfgs_wide.json",
        &format!(r#"{{"w": {:?}}}"#, vec![0.0; 1000]),
    );
    let train_wide = |history: &str| {
        gradc(&[
            "train",
            path_str(&wide),
            "--data",
            path_str(&zeros),
            "--optimizer",
            "lbfgs",
            "--steps",
            "0",
            "--history",
            history,
        ])
    };
    let out = train_wide("65535");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: --history 65535 keeps up to 1.0 GB of past steps (65535 × 2 vectors of 1000 params)"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&train_wide("50000")).is_empty());
    // A NaN gradient (d/dw sqrt(w²) at 0 is 0/0) gives no direction: it stops there.
    let kink = scratch("lbfgs_kink.loss", "param w\nloss = sqrt(w * w)\n");
    let at_zero = scratch("lbfgs_kink.json", r#"{"w": 0}"#);
    let out = gradc(&[
        "train",
        path_str(&kink),
        "--data",
        path_str(&at_zero),
        "--optimizer",
        "lbfgs",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(printed_losses(&out), [0.0]);
    assert!(
        stderr(&out).contains("warning: stopped at step 0: the gradient there has a NaN"),
        "{}",
        stderr(&out)
    );
}
