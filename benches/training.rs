//! Training and inference on real MNIST when `../shared` (or `$MNIST_DIR`) has it, else on
//! synthetic data of the same shape: one step, the full reference run, single-image latency;
//! and, on real MNIST only, loading the gzip'd files and the reference run started from them.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use softnet::data::{BatchOrder, Dataset, Mnist, PIXELS};
use softnet::nn::{Architecture, Input, Model, Workspace};
use softnet::optim::Optimizer;
use softnet::train::{run, run_while_loading, Evaluator, RunConfig, Silent, Trainer};
use std::hint::black_box;

fn mnist_dir() -> std::path::PathBuf {
    std::env::var_os("MNIST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist")
        })
}

fn mnist() -> Mnist {
    Mnist::load(&mnist_dir()).unwrap_or_else(|_| {
        let synth = |n: usize| {
            let pixels = (0..n * PIXELS).map(|i| (i * 7 % 256) as u8).collect();
            Dataset::new(pixels, (0..n).map(|i| (i % 10) as u8).collect())
        };
        Mnist {
            train: synth(60_000),
            test: synth(10_000),
        }
    })
}

fn steps(c: &mut Criterion) {
    let data = mnist();
    let mut group = c.benchmark_group("training step (batch 100)");
    group.throughput(Throughput::Elements(100));
    for (name, arch) in [
        ("784-10", Architecture::softmax_regression()),
        ("784-256-10", Architecture::mlp(&[256])),
    ] {
        let model = Model::he_normal(arch, 1);
        let mut trainer = Trainer::new(
            model,
            Optimizer::sgd(0.1),
            60_000,
            100,
            BatchOrder::Sequential,
            None,
        );
        group.bench_function(name, |b| {
            b.iter(|| trainer.in_pool(|t| black_box(t.step(&data.train))))
        });
    }
    group.finish();
}

fn cnn_steps(c: &mut Criterion) {
    let data = mnist();
    let mut group = c.benchmark_group("training step of the tutorial's CNN (batch 50)");
    group.throughput(Throughput::Elements(50));
    group.sample_size(10);
    for threads in [1, 2] {
        let model = Model::he_normal(Architecture::cnn(), 1);
        let mut trainer = Trainer::new(
            model,
            Optimizer::sgd(0.01),
            60_000,
            50,
            BatchOrder::Sequential,
            Some(threads),
        );
        group.bench_function(format!("{threads} thread(s)"), |b| {
            b.iter(|| trainer.in_pool(|t| black_box(t.step(&data.train))))
        });
    }
    group.finish();
}

fn reference_run(c: &mut Criterion) {
    let data = mnist();
    let mut group = c.benchmark_group("reference run");
    group.sample_size(10);
    for (name, eval_every) in [
        ("2000 steps + 20 evaluations", 100),
        ("2000 steps, training only", 0),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let model = Model::softmax_regression();
                let mut evaluator = Evaluator::new(&model, data.test.len(), None);
                let mut trainer = Trainer::new(
                    model,
                    Optimizer::sgd(0.1),
                    60_000,
                    100,
                    BatchOrder::Sequential,
                    None,
                );
                let config = RunConfig {
                    steps: 2000,
                    eval_every,
                    on_nan: Default::default(),
                };
                black_box(run(&mut trainer, &data, &config, &mut evaluator, &mut Silent).unwrap())
            })
        });
    }
    group.finish();
}

/// From the gzip'd files: loading them, and the reference run started while they load (what
/// `softnet train --order sequential` does). Real MNIST only.
fn from_files(c: &mut Criterion) {
    let dir = mnist_dir();
    if Mnist::open(&dir).is_err() {
        eprintln!("from files: no MNIST files in {}, skipped", dir.display());
        return;
    }
    let mut group = c.benchmark_group("from the gz files");
    group.sample_size(10);
    group.bench_function("load all four", |b| {
        b.iter(|| black_box(Mnist::load(&dir).unwrap().train.len()))
    });
    group.bench_function("reference run started while loading", |b| {
        b.iter(|| {
            let pending = Mnist::open(&dir).unwrap();
            let mut trainer = Trainer::new(
                Model::softmax_regression(),
                Optimizer::sgd(0.1),
                pending
                    .train_len()
                    .expect("gzip'd files arrive as they inflate"),
                100,
                BatchOrder::Sequential,
                None,
            );
            let config = RunConfig {
                steps: 2000,
                eval_every: 100,
                on_nan: Default::default(),
            };
            let (_, summary) =
                run_while_loading(&mut trainer, pending, &config, &mut Silent).unwrap();
            black_box(summary.test.correct)
        })
    });
    group.finish();
}

fn inference(c: &mut Criterion) {
    let data = mnist();
    let mut group = c.benchmark_group("inference");
    for (name, arch) in [
        ("784-10", Architecture::softmax_regression()),
        ("784-256-10", Architecture::mlp(&[256])),
    ] {
        let model = Model::he_normal(arch, 1);
        let mut ws = Workspace::inference(&model, 1);
        let image = data.test.image(0);
        group.bench_function(format!("one image {name}"), |b| {
            b.iter(|| black_box(model.inference(Input::Pixels(black_box(image)), 1, &mut ws)[0]))
        });
    }
    let model = Model::softmax_regression();
    let mut evaluator = Evaluator::new(&model, data.test.len(), None);
    group.throughput(Throughput::Elements(data.test.len() as u64));
    group.bench_function("10000 test images 784-10 (logits, loss, accuracy)", |b| {
        b.iter(|| black_box(evaluator.evaluate(&model, &data.test).correct))
    });
    // Images the evaluator has not seen: it multiplies their pixels (and lists them if they
    // come again).
    let unseen = || Dataset::new(data.test.pixels().to_vec(), data.test.labels().to_vec());
    group.bench_function("10000 unseen images 784-10", |b| {
        b.iter_batched(
            unseen,
            |images| black_box(evaluator.evaluate(&model, &images).correct),
            BatchSize::LargeInput,
        )
    });
    // The products alone, on the test set's pixels.
    {
        use softnet::kernels::listed::{self, NonZeroRows, PackedWeights};
        use softnet::kernels::narrow;
        let (n, pixels) = (data.test.len(), data.test.pixels());
        let trained = Model::he_normal(Architecture::softmax_regression(), 1);
        let w = &trained.params()[..PIXELS * 10];
        let mut out = vec![0.0f32; n * 10];
        group.bench_function(
            "10000 test images x·W, narrow (zero groups skipped)",
            |b| {
                b.iter(|| {
                    narrow::matmul(n, PIXELS, 10, pixels, w, &mut out);
                    black_box(out[0])
                })
            },
        );
        // Listed here too, so the product below has its lists when a filter skips this one.
        let mut listed_rows = NonZeroRows::new();
        listed_rows.list(pixels, n, PIXELS);
        group.bench_function("10000 test images, listing their non-zero pixels", |b| {
            b.iter(|| {
                listed_rows.list(pixels, n, PIXELS);
                black_box(listed_rows.entries())
            })
        });
        let mut packed = PackedWeights::new();
        packed.pack(w, PIXELS, 10);
        group.bench_function("10000 test images x·W, listed (lists made once)", |b| {
            b.iter(|| {
                listed::matmul(&listed_rows, &packed, &mut out);
                black_box(out[0])
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    steps,
    cnn_steps,
    reference_run,
    from_files,
    inference
);
criterion_main!(benches);
