//! After the first step, a training step performs no heap allocation: counted by a global
//! allocator wrapper (its own test binary, so no other test allocates meanwhile).

use softnet::data::{BatchOrder, Dataset, PIXELS};
use softnet::nn::{Architecture, Model};
use softnet::optim::{Optimizer, OptimizerKind};
use softnet::train::Trainer;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

fn data() -> Dataset {
    let n = 600;
    let pixels: Vec<u8> = (0..n * PIXELS).map(|i| (i * 31 % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    Dataset::new(pixels, labels)
}

#[test]
fn training_steps_do_not_allocate() {
    let data = data();
    let cases = [
        (
            Architecture::softmax_regression(),
            OptimizerKind::Sgd,
            100,
            1,
        ),
        (
            Architecture::softmax_regression(),
            OptimizerKind::Sgd,
            100,
            2,
        ),
        (
            Architecture::mlp(&[64]),
            OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            200,
            2,
        ),
        (
            Architecture::mlp(&[32, 16]),
            OptimizerKind::Momentum { momentum: 0.9 },
            100,
            3,
        ),
        // A small CNN with dropout: convolutions, pooling, flatten and dropout masks too.
        (
            Architecture::from_spec("conv5x5x8,pool2,conv3x3x16,pool2,fc32,dropout0.5,fc10")
                .unwrap(),
            OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            50,
            2,
        ),
    ];
    for (arch, kind, batch, threads) in cases {
        let model = Model::he_normal(arch.clone(), 1);
        let optimizer = Optimizer::new(kind, 0.01, model.params().len());
        let order = BatchOrder::Shuffle { seed: 1 };
        let mut trainer = Trainer::new(model, optimizer, data.len(), batch, order, Some(threads));
        // As `softnet::train::run` does: the loop runs inside the pool. The warm-up lets the
        // first step touch every buffer and each worker set up its thread-locals.
        let allocated = trainer.in_pool(|trainer| {
            for _ in 0..100 {
                trainer.step(&data);
            }
            let before = allocations();
            for _ in 0..200 {
                trainer.step(&data);
            }
            allocations() - before
        });
        assert_eq!(
            allocated,
            0,
            "{} on {threads} threads allocated {allocated} times in 200 steps",
            arch.describe()
        );
    }
}
