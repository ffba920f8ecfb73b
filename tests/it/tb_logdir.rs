//! `softnet train --logdir`: the library path (observer + `observe_initial` + `run`) on
//! synthetic data, and the binary itself on real MNIST when `../shared` is present.

use crate::common::{real_mnist_dir, synthetic};
use prost::Message;
use softnet::data::{BatchOrder, Mnist};
use softnet::nn::Model;
use softnet::optim::Optimizer;
use softnet::summary::proto::{event, summary, Event};
use softnet::summary::record::read_records;
use softnet::summary::TensorBoardObserver;
use softnet::train::{observe_initial, run, Evaluator, OnNan, RunConfig, Silent, Trainer};
use std::path::Path;

/// The events of the only event file in `run_dir`.
fn run_events(run_dir: &Path) -> Vec<Event> {
    let files: Vec<_> = std::fs::read_dir(run_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", run_dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    let bytes = std::fs::read(&files[0]).unwrap();
    read_records(&files[0], &bytes)
        .unwrap()
        .into_iter()
        .map(|r| Event::decode(r).unwrap())
        .collect()
}

/// `(step, value)` of every scalar `tag`.
fn series(events: &[Event], tag: &str) -> Vec<(i64, f32)> {
    let mut out = Vec::new();
    for e in events {
        if let Some(event::What::Summary(s)) = &e.what {
            for v in s.value.iter().filter(|v| v.tag == tag) {
                if let Some(summary::value::Kind::SimpleValue(x)) = v.kind {
                    out.push((e.step, x));
                }
            }
        }
    }
    out
}

/// Steps at which `tag` (any kind) was logged.
fn steps_of(events: &[Event], tag: &str) -> Vec<i64> {
    events
        .iter()
        .filter(|e| match &e.what {
            Some(event::What::Summary(s)) => s.value.iter().any(|v| v.tag == tag),
            _ => false,
        })
        .map(|e| e.step)
        .collect()
}

#[test]
fn logdir_holds_train_and_test_runs_from_step_zero() {
    let mnist = Mnist {
        train: synthetic(1000, 1),
        test: synthetic(300, 2),
    };
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("runs/softmax");
    let model = Model::softmax_regression();
    let mut evaluator = Evaluator::new(&model, mnist.test.len(), Some(1));
    let mut trainer = Trainer::new(
        model,
        Optimizer::sgd(0.1),
        mnist.train.len(),
        50,
        BatchOrder::Shuffle { seed: 3 },
        Some(1),
    );
    let tb = TensorBoardObserver::create(&logdir, trainer.model().architecture()).unwrap();
    let mut observers = (Silent, Some(tb));
    let initial = observe_initial(&trainer, &mnist, &mut evaluator, &mut observers).unwrap();
    let config = RunConfig {
        steps: 20,
        eval_every: 10,
        on_nan: OnNan::Stop,
    };
    let summary = run(
        &mut trainer,
        &mnist,
        &config,
        &mut evaluator,
        &mut observers,
    )
    .unwrap();

    let train = run_events(&logdir.join("train"));
    let test = run_events(&logdir.join("test"));
    // Zero weights: every logit is 0, the loss is ln 10 on both runs at step 0.
    let ln10 = 10f32.ln();
    let test_loss = series(&test, "loss/cross_entropy");
    assert_eq!(test_loss.len(), 3);
    assert_eq!(test_loss[0].0, 0);
    assert!((test_loss[0].1 - ln10).abs() < 1e-5, "{test_loss:?}");
    let train_loss = series(&train, "loss/cross_entropy");
    assert_eq!(train_loss[0].0, 0);
    assert!((train_loss[0].1 - ln10).abs() < 1e-5, "{train_loss:?}");
    // The logged test accuracies are the run's own.
    let want: Vec<(i64, f32)> = std::iter::once((0, initial.accuracy as f32))
        .chain(
            summary
                .history
                .iter()
                .map(|&(s, _, a)| (s as i64, a as f32)),
        )
        .collect();
    assert_eq!(series(&test, "evaluation/accuracy"), want);
    assert!(want[2].1 > 0.5, "synthetic data is learnable: {want:?}");
    assert_eq!(series(&train, "evaluation/accuracy").len(), 3);
    // Parameters and logits in both runs; images and the graph in the train run.
    for tag in [
        "variables/Weight/summaries/histogram",
        "variables/Bias/summaries/stddev",
        "logits/logits_histogram",
    ] {
        assert_eq!(steps_of(&train, tag), [0, 10, 20], "train: {tag}");
        assert_eq!(steps_of(&test, tag), [0, 10, 20], "test: {tag}");
    }
    assert_eq!(
        steps_of(&train, "variables/Weight/images/image/9"),
        [0, 10, 20]
    );
    let graphs = train
        .iter()
        .filter(|e| matches!(e.what, Some(event::What::GraphDef(_))))
        .count();
    assert_eq!(graphs, 1);
}

/// The binary, as a user runs it, on real MNIST.
#[cfg(feature = "cli")]
#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn softnet_train_logdir_writes_what_it_prints() {
    let data = real_mnist_dir();
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("run");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_softnet"))
        .args(["train", "--steps", "200", "--eval-every", "100", "--logdir"])
        .arg(&logdir)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `step: N, test_accuracy: A, test_loss: L`, as printed (4 decimals).
    let printed: Vec<(i64, f32)> = stdout
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("step: ")?;
            let (step, rest) = rest.split_once(", test_accuracy: ")?;
            let (acc, _) = rest.split_once(',')?;
            Some((step.parse().unwrap(), acc.parse().unwrap()))
        })
        .collect();
    assert_eq!(
        printed.iter().map(|p| p.0).collect::<Vec<_>>(),
        [0, 100, 200]
    );
    let test = run_events(&logdir.join("test"));
    let logged = series(&test, "evaluation/accuracy");
    assert_eq!(logged.len(), printed.len());
    for ((s1, a1), (s2, a2)) in logged.iter().zip(&printed) {
        assert_eq!(s1, s2);
        assert!((a1 - a2).abs() <= 0.5e-4 + 1e-6, "step {s1}: {a1} vs {a2}");
    }
    let train = run_events(&logdir.join("train"));
    assert_eq!(
        steps_of(&train, "variables/Weight/summaries/histogram"),
        [0, 100, 200]
    );
}

#[test]
fn a_cnn_logdir_has_a_histogram_of_every_parameter_and_a_scope_per_layer() {
    use softnet::nn::Architecture;
    use softnet::summary::proto::GraphDef;
    let mnist = Mnist {
        train: synthetic(200, 1),
        test: synthetic(100, 2),
    };
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("runs/cnn");
    let arch = Architecture::from_spec("conv3x3x4,pool2,fc16,dropout0.5,fc10").unwrap();
    let model = Model::he_normal(arch, 1);
    let mut evaluator = Evaluator::new(&model, mnist.test.len(), Some(2));
    let mut trainer = Trainer::new(
        model,
        Optimizer::sgd(0.05),
        mnist.train.len(),
        50,
        BatchOrder::Shuffle { seed: 3 },
        Some(2),
    );
    let tb = TensorBoardObserver::create(&logdir, trainer.model().architecture()).unwrap();
    let mut observers = (Silent, Some(tb));
    observe_initial(&trainer, &mnist, &mut evaluator, &mut observers).unwrap();
    let config = RunConfig {
        steps: 4,
        eval_every: 2,
        on_nan: OnNan::Stop,
    };
    run(
        &mut trainer,
        &mnist,
        &config,
        &mut evaluator,
        &mut observers,
    )
    .unwrap();
    let train = run_events(&logdir.join("train"));
    for path in [
        "conv1/weight",
        "conv1/bias",
        "fc1/weight",
        "fc1/bias",
        "fc2/weight",
        "fc2/bias",
    ] {
        let tag = format!("{path}/summaries/histogram");
        assert_eq!(steps_of(&train, &tag), [0, 2, 4], "{tag}");
    }
    let graph = train
        .iter()
        .find_map(|e| match &e.what {
            Some(event::What::GraphDef(bytes)) => Some(GraphDef::decode(&bytes[..]).unwrap()),
            _ => None,
        })
        .expect("a graph");
    for node in [
        "conv1/Conv2D",
        "conv1/Relu",
        "pool1/MaxPool",
        "flatten/Reshape",
        "fc1/MatMul",
        "fc1/dropout/mul",
        "fc2/add",
    ] {
        assert!(graph.node.iter().any(|n| n.name == node), "no node {node}");
    }
}
