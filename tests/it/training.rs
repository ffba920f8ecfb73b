//! Trainer properties: thread-count invariance, learning, gradients, divergence.

use softnet::data::{BatchOrder, Mnist};
use softnet::nn::{Architecture, Input, Model, Workspace};
use softnet::optim::{Optimizer, OptimizerKind};
use softnet::train::{shard_rows, Evaluator, OnNan, TrainError, Trainer};

use crate::common::synthetic;

fn train_bytes(arch: &Architecture, batch: usize, threads: usize, steps: usize) -> Vec<u8> {
    let data = synthetic(1000, 1);
    let model = Model::he_normal(arch.clone(), 5);
    let kind = OptimizerKind::Momentum { momentum: 0.9 };
    let optimizer = Optimizer::new(kind, 0.05, model.params().len());
    let mut t = Trainer::new(
        model,
        optimizer,
        data.len(),
        batch,
        BatchOrder::Shuffle { seed: 9 },
        Some(threads),
    );
    for _ in 0..steps {
        t.step(&data);
    }
    t.model()
        .params()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

#[test]
fn weights_are_bit_identical_for_1_2_and_3_threads() {
    for (arch, batch) in [
        (Architecture::softmax_regression(), 100),
        (Architecture::mlp(&[64, 32]), 250),
    ] {
        assert!(
            shard_rows(&Model::zeros(arch.clone()), batch).len() > 1,
            "the test needs several shards"
        );
        let one = train_bytes(&arch, batch, 1, 30);
        assert_eq!(
            one,
            train_bytes(&arch, batch, 2, 30),
            "{} with 2 threads",
            arch.describe()
        );
        assert_eq!(
            one,
            train_bytes(&arch, batch, 3, 30),
            "{} with 3 threads",
            arch.describe()
        );
    }
}

/// The arena of `mlp(&[64, 32])` is larger than one part of the trainer's update, which
/// then sums and updates it in parts on several threads: every step must still be the
/// shards' gradients summed in shard order and one whole-arena optimiser update.
#[test]
fn a_step_is_its_shards_gradients_summed_in_order_then_one_update() {
    let arch = Architecture::mlp(&[64, 32]);
    let (batch, steps) = (250, 3);
    let data = synthetic(batch * steps, 3);
    let kinds = [
        OptimizerKind::Sgd,
        OptimizerKind::Momentum { momentum: 0.9 },
        OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
    ];
    for kind in kinds {
        let model = Model::he_normal(arch.clone(), 7);
        let mut optimizer = Optimizer::new(kind, 0.05, model.params().len());
        optimizer.weight_decay = 1e-3;
        let shards = shard_rows(&model, batch);
        assert!(shards.len() > 2, "the test needs a third shard: {shards:?}");
        let mut trainer = Trainer::new(
            model.clone(),
            optimizer.clone(),
            data.len(),
            batch,
            BatchOrder::Sequential,
            Some(2),
        );
        let mut want = model;
        for step in 0..steps {
            trainer.step(&data);
            let mut sum: Vec<f32> = Vec::new();
            let mut first_row = step * batch;
            for &rows in &shards {
                let pixels = &data.pixels()[first_row * 784..(first_row + rows) * 784];
                let labels = &data.labels()[first_row..first_row + rows];
                let mut ws = Workspace::new(&want, rows);
                want.forward(Input::Pixels(pixels), rows, &mut ws);
                want.loss(labels, 1.0 / batch as f32, &mut ws);
                let mut grads = vec![0.0; want.params().len()];
                want.backward(Input::Pixels(pixels), rows, &mut ws, &mut grads, None);
                if sum.is_empty() {
                    sum = grads;
                } else {
                    sum.iter_mut().zip(&grads).for_each(|(s, g)| *s += g);
                }
                first_row += rows;
            }
            optimizer.apply(want.params_mut(), &sum);
        }
        let bits = |m: &Model| m.params().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert!(
            bits(trainer.model()) == bits(&want),
            "{kind:?}: the trainer's weights differ from the shards' gradients summed in order"
        );
        assert_eq!(trainer.optimizer(), &optimizer, "{kind:?}: optimiser state");
    }
}

#[test]
fn shards_depend_on_the_work_not_the_threads() {
    let softmax = Model::softmax_regression();
    assert_eq!(shard_rows(&softmax, 100), [50, 50]);
    assert_eq!(shard_rows(&softmax, 1), [1]);
    let mlp = Model::zeros(Architecture::mlp(&[256]));
    let rows = shard_rows(&mlp, 1000);
    assert_eq!(rows.iter().sum::<usize>(), 1000);
    assert!(rows.iter().all(|&r| r >= 32), "{rows:?}");
    // Powers of two, so 1, 2, 4, 8 and 16 threads all get equal shares.
    assert_eq!(rows.len(), 16, "{rows:?}");
    assert_eq!(shard_rows(&mlp, 100), [50, 50]);
    assert_eq!(shard_rows(&mlp, 64 * 7).len(), 8);
}

#[test]
fn a_short_run_learns_the_synthetic_task() {
    let data = synthetic(2000, 3);
    let test = synthetic(500, 4);
    let mnist = Mnist { train: data, test };
    for arch in [Architecture::softmax_regression(), Architecture::mlp(&[32])] {
        let model = Model::he_normal(arch.clone(), 1);
        let mut t = Trainer::new(
            model,
            Optimizer::sgd(0.1),
            2000,
            50,
            BatchOrder::Shuffle { seed: 1 },
            Some(2),
        );
        let first = t.step(&mnist.train).loss;
        for _ in 0..200 {
            t.step(&mnist.train);
        }
        let result = softnet::train::evaluate(t.model(), &mnist.test);
        assert!(first > 1.0, "{}: initial loss {first}", arch.describe());
        assert!(
            result.accuracy > 0.95,
            "{}: accuracy {}",
            arch.describe(),
            result.accuracy
        );
        assert_eq!(result.confusion.iter().flatten().sum::<usize>(), 500);
        // On the trainer's own threads, from inside its pool (as `run` evaluates) or from
        // outside, the evaluation is the one a fresh single-threaded evaluator makes.
        let mut shared = Evaluator::with_pool(t.model(), 500, t.pool().clone());
        let inside = t.in_pool(|t| shared.evaluate(t.model(), &mnist.test));
        assert_eq!(inside, result);
        assert_eq!(shared.evaluate(t.model(), &mnist.test), result);
        let single = Evaluator::new(t.model(), 500, Some(1)).evaluate(t.model(), &mnist.test);
        assert_eq!(single, result);
    }
}

/// Mean loss of `params` on `x` in f64, by a plain forward pass written here from scratch.
fn loss_f64(arch: &Architecture, params: &[f64], x: &[f64], labels: &[u8]) -> f64 {
    let rows = labels.len();
    let mut act: Vec<f64> = x.to_vec();
    let mut at = 0;
    let widths = arch.dense_widths().expect("a dense network");
    let shapes: Vec<(usize, usize)> = widths.windows(2).map(|w| (w[0], w[1])).collect();
    for (l, &(fi, fo)) in shapes.iter().enumerate() {
        let w = &params[at..at + fi * fo];
        let b = &params[at + fi * fo..at + fi * fo + fo];
        at += fi * fo + fo;
        let mut out = vec![0.0; rows * fo];
        for r in 0..rows {
            for j in 0..fo {
                let mut s = b[j];
                for k in 0..fi {
                    s += act[r * fi + k] * w[k * fo + j];
                }
                out[r * fo + j] = if l + 1 < shapes.len() { s.max(0.0) } else { s };
            }
        }
        act = out;
    }
    let c = arch.classes();
    let mut loss = 0.0;
    for r in 0..rows {
        let z = &act[r * c..(r + 1) * c];
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        loss += lse - z[labels[r] as usize];
    }
    loss / rows as f64
}

#[test]
fn analytic_gradients_match_central_differences_in_f64() {
    let arch = Architecture::dense(12, &[7, 5], 4).unwrap();
    let mut model = Model::he_normal(arch.clone(), 11);
    // Non-zero biases so every term of the gradient is exercised.
    let n = model.params().len();
    for (i, p) in model.params_mut().iter_mut().enumerate() {
        if i % 3 == 0 {
            *p += 0.05 * ((i % 7) as f32 - 3.0);
        }
    }
    let rows = 6;
    let x: Vec<f32> = (0..rows * 12)
        .map(|i| ((i * 37 % 17) as f32) / 17.0)
        .collect();
    let labels: Vec<u8> = (0..rows).map(|i| (i % 4) as u8).collect();
    let mut ws = Workspace::new(&model, rows);
    model.forward(Input::Unit(&x), rows, &mut ws);
    model.loss(&labels, 1.0 / rows as f32, &mut ws);
    let mut grads = vec![0.0f32; n];
    let mut input_grad = vec![0.0f32; x.len()];
    model.backward(
        Input::Unit(&x),
        rows,
        &mut ws,
        &mut grads,
        Some(&mut input_grad),
    );

    let p64: Vec<f64> = model.params().iter().map(|&v| f64::from(v)).collect();
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let h = 1e-6;
    for i in 0..n {
        let (mut plus, mut minus) = (p64.clone(), p64.clone());
        plus[i] += h;
        minus[i] -= h;
        let numeric = (loss_f64(&arch, &plus, &x64, &labels)
            - loss_f64(&arch, &minus, &x64, &labels))
            / (2.0 * h);
        let err = (numeric - f64::from(grads[i])).abs();
        assert!(
            err < 1e-4 * (1.0 + numeric.abs()),
            "param {i}: analytic {} vs numeric {numeric}",
            grads[i]
        );
    }
    for i in 0..x.len() {
        let (mut plus, mut minus) = (x64.clone(), x64.clone());
        plus[i] += h;
        minus[i] -= h;
        let numeric = (loss_f64(&arch, &p64, &plus, &labels)
            - loss_f64(&arch, &p64, &minus, &labels))
            / (2.0 * h);
        let err = (numeric - f64::from(input_grad[i])).abs();
        assert!(
            err < 1e-4 * (1.0 + numeric.abs()),
            "input {i}: analytic {} vs numeric {numeric}",
            input_grad[i]
        );
    }
}

#[test]
fn a_huge_learning_rate_stops_with_the_step_that_diverged() {
    let data = synthetic(500, 2);
    let model = Model::softmax_regression();
    let mut t = Trainer::new(
        model,
        Optimizer::sgd(1e6),
        500,
        50,
        BatchOrder::Sequential,
        Some(1),
    );
    let mut failure = None;
    for _ in 0..100 {
        match t.step_guarded(&data, OnNan::Stop) {
            Ok(_) => {}
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let Some(TrainError::Diverged { step, .. }) = failure else {
        panic!("did not diverge: {failure:?}")
    };
    assert_eq!(step, t.steps_done() + 1);
    assert!(step >= 2);
}

#[test]
fn evaluations_over_listed_pixels_are_those_over_the_pixels() {
    use softnet::data::Dataset;
    // Mostly zero pixels, as MNIST's; 1,234 rows: neither chunks of 500 nor blocks of four
    // come out even.
    let sparse = |seed| {
        let d = synthetic(1234, seed);
        let px = d
            .pixels()
            .iter()
            .map(|&p| if p < 48 { 0 } else { p })
            .collect();
        Dataset::new(px, d.labels().to_vec())
    };
    let (a, b) = (sparse(1), sparse(2));
    assert_eq!(a.clone().id(), a.id());
    assert_ne!(a.id(), b.id());
    let mut model = Model::he_normal(Architecture::softmax_regression(), 11);
    assert!(model.reads_listed_inputs());
    assert!(!Model::he_normal(Architecture::mlp(&[64]), 1).reads_listed_inputs());
    let mut evaluator = Evaluator::new(&model, 1234, Some(2));
    let mut ws = Workspace::inference(&model, 1234);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    // Once (not worth listing), twice in a row (listed), other data of the same size once and
    // twice (listed anew), a clone of the first, the first again; new weights every time.
    for (round, data) in [&a, &a, &b, &b, &a.clone(), &a, &a].into_iter().enumerate() {
        let got = evaluator.evaluate(&model, data);
        let want = model
            .inference(Input::Pixels(data.pixels()), data.len(), &mut ws)
            .to_vec();
        assert_eq!(
            bits(evaluator.logits(data.len())),
            bits(&want),
            "round {round}"
        );
        let correct = want
            .chunks(10)
            .zip(data.labels())
            .filter(|(row, &label)| {
                softnet::kernels::elementwise::argmax(row) == usize::from(label)
            })
            .count();
        assert_eq!(got.correct, correct, "round {round}");
        assert!(correct > 0 && correct < 1234);
        // New weights through both ways parameters change: the arena, or one by its path.
        let mut params = model.params().to_vec();
        for (i, p) in params.iter_mut().enumerate() {
            *p += ((i * 7 + round) % 13) as f32 * 1e-3 - 6e-3;
        }
        if round % 2 == 0 {
            model.params_mut().copy_from_slice(&params);
        } else {
            let mut weight_path = String::new();
            model.visit_params(|p| {
                if weight_path.is_empty() {
                    weight_path = p.path.to_string();
                }
            });
            assert!(model.set_param(&weight_path, &params[..784 * 10]));
        }
    }
}
