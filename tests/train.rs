//! The trainer as a library: `gradc::train::fit` is `gradc train` for a Rust program.

use gradc::train::{self, FitError, LossOf, Rule, Settings};
use gradc::{Model, Tensor};

/// A line fitted to `y = 2 x + 1`; `closeness` peaks where `a` passes 1.5 on its way
/// from 0 to 2.
const LINE: &str = "\
input x: [N]
input y: [N]
param a
param b
loss = mean((a * x + b - y)^2)
output closeness = -(a - 1.5)^2
output fitted = a * x + b
";

fn line_data(model: &Model) -> gradc::data::Bound {
    let x: Vec<f64> = (0..10).map(|k| k as f64 / 10.0).collect();
    let y: Vec<f64> = x.iter().map(|x| 2.0 * x + 1.0).collect();
    let data = serde_json::json!({ "x": x, "y": y, "a": 0.0, "b": 0.0 });
    model.bind_json(&data).expect("binds")
}

fn settings(steps: usize, lr: f64) -> Settings {
    Settings {
        report_every: 100,
        ..Settings::new(Rule::Sgd, lr, steps)
    }
}

fn param(bound: &gradc::data::Bound, k: usize) -> f64 {
    bound.args[k].as_real().expect("real")[0]
}

#[test]
fn fit_trains_the_params_in_place_and_reports_over_all_the_data() {
    let model = Model::from_source(LINE).expect("compiles");
    let mut bound = line_data(&model);
    let mut reports = Vec::new();
    let fitted = train::fit(&model, &mut bound, &settings(500, 0.5), |report| {
        let outputs: Vec<String> = report.outputs.iter().map(|(n, _)| n.to_string()).collect();
        reports.push((report.step, report.loss, report.learning_rate, outputs));
        Ok(())
    })
    .expect("trains");
    let steps: Vec<usize> = reports.iter().map(|r| r.0).collect();
    assert_eq!(steps, (0..=500).step_by(100).collect::<Vec<_>>());
    // Only the scalar output is reported; a constant rate is not.
    assert!(reports
        .iter()
        .all(|r| r.2.is_none() && r.3 == ["closeness"]));
    assert!(reports.windows(2).all(|w| w[1].1 < w[0].1), "{reports:?}");
    assert!((param(&bound, 2) - 2.0).abs() < 1e-6 && (param(&bound, 3) - 1.0).abs() < 1e-6);
    // The last report is the loss at the params left in the data.
    let (loss, _) = model.value_and_grad_vec(&bound).expect("evaluates");
    assert_eq!(fitted.last_loss, loss);
    assert_eq!(reports.last().unwrap().1, loss);
    assert_eq!(fitted.kept, None);
    // One value-and-gradient call a step, and one for the loss after the last.
    assert_eq!(fitted.evaluations, 501);
}

#[test]
fn keep_leaves_the_params_of_the_best_report() {
    let model = Model::from_source(LINE).expect("compiles");
    let mut kept = line_data(&model);
    let mut best_seen = (f64::NEG_INFINITY, 0);
    let keep = Settings {
        keep: Some(("closeness".into(), true)),
        report_every: 5,
        ..settings(200, 0.1)
    };
    let fitted = train::fit(&model, &mut kept, &keep, |report| {
        let closeness = report.outputs[0].1;
        if closeness > best_seen.0 {
            best_seen = (closeness, report.step);
        }
        Ok(())
    })
    .expect("trains");
    assert_eq!(fitted.kept, Some(best_seen));
    let step = best_seen.1;
    assert!(step > 0 && step < 200, "the best is mid-run: {step}");
    // The kept params are those of a run that stops at that step.
    let mut stopped = line_data(&model);
    train::fit(&model, &mut stopped, &settings(step, 0.1), |_| Ok(())).expect("trains");
    assert_eq!(kept.args, stopped.args);
    // Only `loss` and scalar outputs can be kept.
    let mut bound = line_data(&model);
    let wrong = Settings {
        keep: Some(("fitted".into(), true)),
        ..settings(10, 0.1)
    };
    let error = train::fit(&model, &mut bound, &wrong, |_| Ok(())).unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot keep the best `fitted`: the values reported are `loss`, `closeness`"
    );
}

#[test]
fn a_diverging_run_stops_with_the_step_whose_params_overflowed() {
    let model = Model::from_source(LINE).expect("compiles");
    let mut bound = line_data(&model);
    let error = train::fit(&model, &mut bound, &settings(10_000, 50.0), |_| Ok(())).unwrap_err();
    let FitError::NotFinite { step, loss, of } = &error else {
        panic!("{error:?}")
    };
    assert!(
        *step > 0 && !loss.is_finite() && *of == LossOf::Data,
        "{error:?}"
    );
    assert!(
        error.to_string().ends_with("lower the learning rate"),
        "{error}"
    );
    // A report that fails stops the run with its message.
    let mut bound = line_data(&model);
    let error = train::fit(&model, &mut bound, &settings(10, 0.1), |_| {
        Err("full".into())
    });
    assert_eq!(error, Err(FitError::Report("full".into())));
}

#[test]
fn batches_step_on_part_of_the_data_and_report_on_all_of_it() {
    let model = Model::from_source(LINE).expect("compiles");
    let mut bound = line_data(&model);
    let start = model.value_and_grad_vec(&bound).expect("evaluates").0;
    let batched = Settings {
        batch: Some((4, Some("N".into()), 7)),
        report_every: 1,
        ..settings(3, 0.1)
    };
    let mut losses = Vec::new();
    train::fit(&model, &mut bound, &batched, |report| {
        losses.push(report.loss);
        Ok(())
    })
    .expect("trains");
    assert_eq!(losses.len(), 4);
    assert_eq!(
        losses[0], start,
        "step 0 reports the loss over all ten rows"
    );
    // The data keeps all its rows; only the params moved.
    assert_eq!(bound.dims, vec![10]);
    assert_eq!(
        bound.args[0],
        Tensor::real(vec![10], (0..10).map(|k| k as f64 / 10.0).collect())
    );
    assert_ne!(param(&bound, 2), 0.0);
    let mut bound = line_data(&model);
    let too_big = Settings {
        batch: Some((11, None, 7)),
        ..settings(3, 0.1)
    };
    let error = train::fit(&model, &mut bound, &too_big, |_| Ok(())).unwrap_err();
    assert!(matches!(error, FitError::Batches(_)), "{error:?}");
    // A NaN in the data: the step's batch (all ten rows) says so first.
    let mut bound = line_data(&model);
    if let gradc::TensorData::Real(x) = &mut bound.args[0].data {
        x[3] = f64::NAN;
    }
    let whole_batches = Settings {
        batch: Some((10, None, 7)),
        ..settings(3, 0.1)
    };
    let error = train::fit(&model, &mut bound, &whole_batches, |_| Ok(())).unwrap_err();
    assert!(
        matches!(
            error,
            FitError::NotFinite {
                step: 0,
                of: LossOf::Batch,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("the loss of the batch is NaN at step 0"),
        "{error}"
    );
}

/// Logistic regression on points that no line separates (label 1 beyond x = 0.5, and
/// one of each on the wrong side), written with `log(sigmoid(..))`.
const LOGISTIC: &str = "\
input x: [N]
input y: [N]
param w
param c
let z = w * x + c
loss = -mean(y * log(sigmoid(z)) + (1 - y) * log(sigmoid(-z)))
";

fn logistic_data(model: &Model, labels: &[f64]) -> gradc::data::Bound {
    let x: Vec<f64> = (0..labels.len()).map(|k| k as f64 / 10.0).collect();
    let data = serde_json::json!({ "x": x, "y": labels, "w": 0.0, "c": 0.0 });
    model.bind_json(&data).expect("binds")
}

#[test]
fn lbfgs_stops_at_a_minimum_where_the_gradient_vanishes() {
    let model = Model::from_source(LOGISTIC).expect("compiles");
    let labels = [0., 0., 0., 1., 0., 0., 1., 1., 0., 1., 1., 1.];
    let mut bound = logistic_data(&model, &labels);
    let mut reports = Vec::new();
    let settings = Settings {
        report_every: 1,
        ..Settings::lbfgs(200)
    };
    let fitted = train::fit(&model, &mut bound, &settings, |report| {
        reports.push((report.step, report.loss, report.learning_rate));
        Ok(())
    })
    .expect("trains");
    let (step, stop) = fitted.stopped_at.expect("converges before 200 steps");
    assert_eq!(stop, train::LbfgsStop::NoDecrease);
    assert!(step < 50, "{step} steps");
    // Mostly one trial a step, and no long search at the end to confirm the minimum.
    assert!(
        fitted.evaluations > step && fitted.evaluations <= step + 10,
        "{} evaluations, {step} steps",
        fitted.evaluations
    );
    // Every step is reported once, the loss falls at each, and no rate is reported.
    let steps: Vec<usize> = reports.iter().map(|r| r.0).collect();
    assert_eq!(steps, (0..=step).collect::<Vec<_>>());
    assert!(reports.windows(2).all(|w| w[1].1 < w[0].1), "{reports:?}");
    assert!(reports.iter().all(|r| r.2.is_none()));
    let (loss, grads) = model.value_and_grad_vec(&bound).expect("evaluates");
    assert_eq!(fitted.last_loss, loss);
    for g in &grads {
        assert!(g.as_real().unwrap()[0].abs() < 1e-8, "{grads:?}");
    }
    // Adam's 200 steps at its usual rate are nowhere near.
    let mut adam = logistic_data(&model, &labels);
    let adam_fit = train::fit(
        &model,
        &mut adam,
        &Settings::new(Rule::Adam, 0.01, 200),
        |_| Ok(()),
    )
    .expect("trains");
    assert!(
        adam_fit.last_loss > loss + 1e-3,
        "{} {loss}",
        adam_fit.last_loss
    );
}

#[test]
fn lbfgs_on_separable_data_stops_where_the_loss_can_still_be_computed() {
    // Separable: the loss falls towards 0 as w grows, until a sigmoid rounds to 1 and
    // `log(1 - p)` is -inf (times a zero label: NaN). Written with `log(sigmoid(-z))`
    // instead, the loss stays finite (the test above).
    let model = Model::from_source(&LOGISTIC.replace("log(sigmoid(-z))", "log(1 - sigmoid(z))"))
        .expect("compiles");
    let labels = [0., 0., 0., 0., 0., 1., 1., 1., 1., 1.];
    let mut bound = logistic_data(&model, &labels);
    let fitted = train::fit(&model, &mut bound, &Settings::lbfgs(500), |_| Ok(())).expect("trains");
    let (_, stop) = fitted.stopped_at.expect("stops before 500 steps");
    assert_eq!(stop, train::LbfgsStop::NotFinite);
    let (loss, _) = model.value_and_grad_vec(&bound).expect("evaluates");
    assert!(loss.is_finite() && loss < 0.01, "{loss}");
    assert_eq!(fitted.last_loss, loss);
}

#[test]
fn lbfgs_takes_no_batches() {
    let model = Model::from_source(LINE).expect("compiles");
    let mut bound = line_data(&model);
    let settings = Settings {
        batch: Some((4, None, 0)),
        ..Settings::lbfgs(10)
    };
    let error = train::fit(&model, &mut bound, &settings, |_| Ok(())).unwrap_err();
    assert!(
        matches!(&error, FitError::Batches(m) if m.contains("L-BFGS")),
        "{error}"
    );
    assert_eq!(param(&bound, 2), 0.0);
}
