//! The tutorial's CNN in `softnet bench`: an Adam step of 50 images with dropout, one image
//! through the f32 network, and 10,000 images; and the dense-equivalent arithmetic of each.

use std::time::Instant;

use softnet::data::{BatchOrder, Dataset, Mnist, PIXELS};
use softnet::nn::{Architecture, Input, Model, Workspace};
use softnet::optim::{Optimizer, OptimizerKind};
use softnet::train::{Evaluator, Pool, Trainer};
use softnet::Classifier;

use super::report::Spread;

/// The tutorial's batch and learning rate ("Deep MNIST": Adam at 1e-4, 50 images a step).
pub const BATCH: usize = 50;
const LEARNING_RATE: f32 = 1e-4;
/// Images of the inference measurement: the test set's size.
pub const IMAGES: usize = 10_000;

/// A trainer of the tutorial's CNN as its recipe has it: He-normal weights, Adam at 1e-4,
/// batches of 50 in file order, dropout 0.5 (the architecture's), on `threads` threads.
pub fn trainer(train_len: usize, threads: Option<usize>) -> Trainer {
    let model = Model::he_normal(Architecture::cnn(), 1);
    let adam = OptimizerKind::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let optimizer = Optimizer::new(adam, LEARNING_RATE, model.params().len());
    let mut trainer = Trainer::new(
        model,
        optimizer,
        train_len,
        BATCH,
        BatchOrder::Sequential,
        threads,
    );
    trainer.set_seed(1);
    trainer
}

/// Images a second of `steps` training steps timed one by one after `warm_up` untimed
/// ones (page faults, thread start-up, the optimiser's first touch of its moments).
pub fn train_images_per_s(
    mnist: &Mnist,
    threads: Option<usize>,
    warm_up: usize,
    steps: usize,
) -> Spread {
    let mut trainer = trainer(mnist.train.len(), threads);
    let seconds = trainer.in_pool(|t| {
        for _ in 0..warm_up {
            t.step(&mnist.train);
        }
        (0..steps.max(1))
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(t.step(&mnist.train));
                started.elapsed().as_secs_f64()
            })
            .collect::<Vec<_>>()
    });
    Spread::of(seconds).map(|s| BATCH as f64 / s)
}

/// Microseconds of one image through `Model::inference` (one thread, a workspace of one
/// row), each sample the mean over `per_sample` test images.
pub fn infer_1_us(mnist: &Mnist, model: &Model, samples: usize, per_sample: usize) -> Spread {
    let mut ws = Workspace::inference(model, 1);
    let test = &mnist.test;
    // Warm-up: the workspace's pages and the filters' first trip through the caches.
    std::hint::black_box(model.inference(Input::Pixels(test.image(0)), 1, &mut ws)[0]);
    per_image_us(test, samples, per_sample, |image| {
        model.inference(Input::Pixels(image), 1, &mut ws)[0]
    })
}

/// Samples of the mean microseconds `one` takes on an image, each over `per_sample` test
/// images taken in turn; what `one` returns is kept so the work is not optimised away.
fn per_image_us(
    test: &Dataset,
    samples: usize,
    per_sample: usize,
    mut one: impl FnMut(&[u8]) -> f32,
) -> Spread {
    let times = (0..samples.max(1))
        .map(|s| {
            let started = Instant::now();
            let mut sink = 0.0;
            for i in 0..per_sample {
                sink += one(test.image((s * per_sample + i) % test.len()));
            }
            std::hint::black_box(sink);
            started.elapsed().as_secs_f64() * 1e6 / per_sample as f64
        })
        .collect();
    Spread::of(times)
}

/// Microseconds of one image through [`Evaluator::one`] on `threads` threads (the dense
/// head's wide products split over them), each sample the mean over `per_sample` test
/// images.
pub fn infer_1_pool_us(
    mnist: &Mnist,
    model: &Model,
    threads: Option<usize>,
    samples: usize,
    per_sample: usize,
) -> Spread {
    let mut evaluator = Evaluator::new(model, 1, threads);
    let test = &mnist.test;
    std::hint::black_box(evaluator.one(model, Input::Pixels(test.image(0)))[0]);
    per_image_us(test, samples, per_sample, |image| {
        evaluator.one(model, Input::Pixels(image))[0]
    })
}

/// Microseconds of one image through an int8 [`Classifier`] (`logits_into`, one thread),
/// each sample the mean over `per_sample` test images.
pub fn int8_infer_1_us(
    mnist: &Mnist,
    classifier: &Classifier,
    samples: usize,
    per_sample: usize,
) -> Spread {
    let test = &mnist.test;
    let mut logits = vec![0.0; classifier.classes()];
    // Warm-up: the thread's scratch is made at its first prediction.
    classifier.logits_into(test.image(0), &mut logits);
    per_image_us(test, samples, per_sample, |image| {
        classifier.logits_into(image, &mut logits);
        logits[0]
    })
}

/// Milliseconds of evaluating an int8 [`Classifier`] on `images` on `threads` threads
/// ([`Classifier::evaluate_on`]), after one untimed evaluation.
pub fn int8_infer_10k_ms(
    classifier: &Classifier,
    images: &Dataset,
    threads: Option<usize>,
    repeats: usize,
) -> Spread {
    let pool = Pool::new(threads);
    classifier.evaluate_on(images, &pool);
    let times = (0..repeats.max(1))
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(classifier.evaluate_on(images, &pool).correct);
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    Spread::of(times)
}

/// [`IMAGES`] images: the test set, repeated to that many when it is smaller (a synthetic
/// or partial data folder), so the key always times the same work.
pub fn ten_thousand(test: &Dataset) -> Dataset {
    let n = test.len().max(1);
    let (pixels, labels) = (test.pixels(), test.labels());
    let mut p = Vec::with_capacity(IMAGES * PIXELS);
    let mut l = Vec::with_capacity(IMAGES);
    for i in 0..IMAGES {
        let j = i % n;
        p.extend_from_slice(&pixels[j * PIXELS..(j + 1) * PIXELS]);
        l.push(labels.get(j).copied().unwrap_or(0));
    }
    Dataset::new(p, l)
}

/// Milliseconds of evaluating `model` on `images` (logits, loss, accuracy) on `threads`
/// threads, after one untimed evaluation.
pub fn infer_10k_ms(
    model: &Model,
    images: &Dataset,
    threads: Option<usize>,
    repeats: usize,
) -> Spread {
    let mut evaluator = Evaluator::new(model, images.len(), threads);
    evaluator.evaluate(model, images);
    let times = (0..repeats.max(1))
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(evaluator.evaluate(model, images).correct);
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    Spread::of(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_test_set_is_repeated_to_ten_thousand_images() {
        let pixels: Vec<u8> = (0..3 * PIXELS).map(|i| (i / PIXELS) as u8).collect();
        let small = Dataset::new(pixels, vec![4, 5, 6]);
        let big = ten_thousand(&small);
        assert_eq!(big.len(), IMAGES);
        assert_eq!(big.labels()[..4], [4, 5, 6, 4]);
        assert_eq!(big.image(9_999)[0], (9_999 % 3) as u8);
    }
}
