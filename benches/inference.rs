//! Inference latency: one image (f32 and int8 engines, softmax regression and an MLP) and
//! the 10,000-image test set through `predict_batch`.
//!
//! `cargo bench --bench inference`; medians are what the README quotes.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use softnet::data::PIXELS;
use softnet::io::QuantizedModel;
use softnet::nn::{Architecture, Model};
use softnet::Classifier;

/// The model `softnet train -q --save` wrote.
const FIXTURE: &[u8] = include_bytes!("../tests/fixtures/softmax.safetensors");

/// The real test images when `../shared` has them, else deterministic noise.
fn test_images() -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    match softnet::data::Mnist::load(&dir) {
        Ok(m) => m.test.pixels().to_vec(),
        Err(_) => (0..10_000 * PIXELS).map(|i| (i * 31 % 251) as u8).collect(),
    }
}

fn classifiers() -> Vec<(&'static str, Classifier)> {
    let softmax = Classifier::from_bytes(FIXTURE).expect("the fixture loads");
    let softmax_model = match softnet::io::load_any_model_bytes(FIXTURE, "f".as_ref()) {
        Ok(softnet::io::AnyModel::F32(m)) => m,
        _ => unreachable!("the fixture is an f32 model"),
    };
    let mlp = Model::he_normal(Architecture::mlp(&[128]), 1);
    let q = |m: &Model| Classifier::from_quantized(&QuantizedModel::quantize(m)).unwrap();
    vec![
        ("784-10/f32", softmax),
        ("784-10/int8", q(&softmax_model)),
        ("784-128-10/f32", Classifier::from_model(&mlp).unwrap()),
        ("784-128-10/int8", q(&mlp)),
    ]
}

fn bench(c: &mut Criterion) {
    let images = test_images();
    let image: &[u8; PIXELS] = images[..PIXELS].try_into().unwrap();
    let all = classifiers();

    let mut g = c.benchmark_group("predict_one");
    g.throughput(Throughput::Elements(1));
    for (name, classifier) in &all {
        g.bench_function(*name, |b| b.iter(|| classifier.predict(black_box(image))));
    }
    g.finish();

    let mut g = c.benchmark_group("predict_batch_10k");
    let n = images.len() / PIXELS;
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(20);
    let mut classes = vec![0u8; n];
    let mut confidence = vec![0.0f32; n];
    for (name, classifier) in &all {
        g.bench_function(*name, |b| {
            b.iter(|| classifier.predict_batch(black_box(&images), &mut classes, &mut confidence))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
