//! Fidelity against the tutorial's TensorFlow graph (the reference outputs, see
//! `common::reference_dir`), on real MNIST.

use softnet::data::{BatchOrder, PIXELS};
use softnet::nn::{Architecture, Input, Model, Workspace};
use softnet::optim::Optimizer;
use softnet::train::{run, Evaluator, RunConfig, Silent, Trainer};

use crate::common::{max_abs_diff, npy, real_mnist, reference_dir};

#[test]
#[cfg_attr(
    any(softnet_no_mnist, softnet_no_reference, not(feature = "gz")),
    ignore = "needs MNIST and the reference outputs: MNIST_DIR, SOFTNET_REFERENCE_DIR or ../shared"
)]
fn softmax_regression_matches_tensorflow_weights_logits_and_history() {
    let mnist = real_mnist();
    let reference = reference_dir().join("tf_seed_2000");
    let model = Model::softmax_regression();
    let mut evaluator = Evaluator::new(&model, mnist.test.len(), Some(2));
    let mut trainer = Trainer::new(
        model,
        Optimizer::sgd(0.1),
        60_000,
        100,
        BatchOrder::Sequential,
        Some(2),
    );
    let config = RunConfig {
        steps: 2000,
        eval_every: 100,
        on_nan: Default::default(),
    };
    let summary = run(&mut trainer, &mnist, &config, &mut evaluator, &mut Silent).unwrap();
    let model = trainer.model();

    let w = npy(&reference.join("W.npy"));
    let b = npy(&reference.join("b.npy"));
    assert_eq!(w.shape, [784, 10]);
    let dw = max_abs_diff(model.weight(0), &w.values);
    let db = max_abs_diff(model.bias(0), &b.values);
    assert!(dw <= 1e-5, "W differs from TensorFlow's by {dw}");
    assert!(db <= 1e-5, "b differs from TensorFlow's by {db}");

    let mut ws = Workspace::new(model, 100);
    let logits = model.inference(
        Input::Pixels(&mnist.test.pixels()[..100 * PIXELS]),
        100,
        &mut ws,
    );
    let expected = npy(&reference.join("logits100.npy"));
    let dl = max_abs_diff(logits, &expected.values);
    assert!(dl <= 1e-4, "logits differ by {dl}");

    let history = std::fs::read_to_string(reference.join("history.csv")).unwrap();
    let expected: Vec<(u64, String, String)> = history
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[1].to_string(), f[2].to_string())
        })
        .collect();
    assert_eq!(expected.len(), 20);
    let got: Vec<(u64, String, String)> = summary
        .history
        .iter()
        .map(|&(s, loss, acc)| (s, format!("{loss:.4}"), format!("{acc:.4}")))
        .collect();
    assert_eq!(got, expected);
    let differing = summary.test.correct.abs_diff(9148);
    assert!(
        differing <= 3,
        "final accuracy {} vs 0.9148",
        summary.test.accuracy
    );
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, softnet_no_reference, not(feature = "gz")),
    ignore = "needs MNIST and the reference outputs: MNIST_DIR, SOFTNET_REFERENCE_DIR or ../shared"
)]
fn mlp_ten_steps_match_tensorflow() {
    let mnist = real_mnist();
    let reference = reference_dir().join("mlp_784_256_10");
    let mut model = Model::zeros(Architecture::mlp(&[256]));
    model.set_param("layer1/weight", &npy(&reference.join("init/W1.npy")).values);
    model.set_param("logits/weight", &npy(&reference.join("init/W2.npy")).values);
    let mut trainer = Trainer::new(
        model,
        Optimizer::sgd(0.1),
        60_000,
        100,
        BatchOrder::Sequential,
        Some(3),
    );
    for _ in 0..10 {
        trainer.step(&mnist.train);
    }
    let model = trainer.model();
    let after = reference.join("tf_after_10_steps");
    for (path, file) in [
        ("layer1/weight", "W1.npy"),
        ("layer1/bias", "b1.npy"),
        ("logits/weight", "W2.npy"),
        ("logits/bias", "b2.npy"),
    ] {
        let expected = npy(&after.join(file));
        let mut got = Vec::new();
        model.visit_params(|p| {
            if p.path == path {
                got = p.values.to_vec();
            }
        });
        let d = max_abs_diff(&got, &expected.values);
        assert!(d <= 1e-5, "{path} differs from TensorFlow's by {d}");
    }
    let mut ws = Workspace::new(model, 100);
    let logits = model.inference(
        Input::Pixels(&mnist.test.pixels()[..100 * PIXELS]),
        100,
        &mut ws,
    );
    let d = max_abs_diff(logits, &npy(&after.join("logits100.npy")).values);
    assert!(d <= 1e-4, "logits differ by {d}");
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, softnet_no_reference, not(feature = "gz")),
    ignore = "needs MNIST and the reference outputs: MNIST_DIR, SOFTNET_REFERENCE_DIR or ../shared"
)]
fn mlp_from_the_reference_init_reaches_tensorflows_accuracy_after_6000_updates() {
    let mnist = real_mnist();
    let init = reference_dir().join("mlp_784_256_10/init");
    let mut model = Model::zeros(Architecture::mlp(&[256]));
    model.set_param("layer1/weight", &npy(&init.join("W1.npy")).values);
    model.set_param("logits/weight", &npy(&init.join("W2.npy")).values);
    let mut evaluator = Evaluator::new(&model, mnist.test.len(), None);
    let mut trainer = Trainer::new(
        model,
        Optimizer::sgd(0.1),
        60_000,
        100,
        BatchOrder::Sequential,
        None,
    );
    let config = RunConfig {
        steps: 6000,
        eval_every: 0,
        on_nan: Default::default(),
    };
    let summary = run(&mut trainer, &mnist, &config, &mut evaluator, &mut Silent).unwrap();
    // TensorFlow 0.9740, numpy 0.9739-0.9740, JAX 0.9741, PyTorch 0.9738.
    let accuracy = summary.test.accuracy;
    assert!(
        (accuracy - 0.9740).abs() <= 0.0015,
        "test accuracy {accuracy} after 6000 updates"
    );
    assert!(accuracy > 0.95);
}
