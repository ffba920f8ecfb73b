//! Training images handed out while they inflate (`PendingMnist::load_while`,
//! `train::run_while_loading`): the same data, the same errors and the same trained weights
//! as loading everything first.

use std::path::Path;

use softnet::data::{BatchOrder, Dataset, Mnist, FILE_NAMES, PIXELS};
use softnet::nn::Model;
use softnet::optim::{Optimizer, OptimizerKind};
use softnet::train::{
    run, run_while_loading, EvalEvent, Evaluator, Observer, OnNan, RunConfig, StepStats, Trainer,
};

use crate::common::{
    find_mnist_dir, gzip as gz, idx_images, idx_labels, real_mnist_dir, synthetic,
};

fn images_file(data: &Dataset) -> Vec<u8> {
    idx_images(data.pixels(), data.len() as u32)
}

fn labels_file(data: &Dataset) -> Vec<u8> {
    idx_labels(data.labels())
}

/// Writes the four gzip'd files, the training images as given.
fn write_files(dir: &Path, train_images_gz: &[u8], train: &Dataset, test: &Dataset) {
    let contents = [
        train_images_gz.to_vec(),
        gz(&labels_file(train)),
        gz(&images_file(test)),
        gz(&labels_file(test)),
    ];
    for (name, bytes) in FILE_NAMES.iter().zip(contents) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn arriving_rows_are_the_rows_of_the_loaded_data() {
    let (train, test) = (synthetic(130, 1), synthetic(20, 2));
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &gz(&images_file(&train)), &train, &test);
    let pending = Mnist::open(dir.path()).unwrap();
    assert_eq!(pending.train_len(), Some(130));
    let (mnist, ()) = pending
        .load_while(25, |arriving, test_set| {
            assert_eq!(test_set, &test);
            // Within one piece of 25 (the last holds 5), in any order.
            for range in [25..50, 0..25, 3..20, 100..125, 125..130, 7..8] {
                let rows = arriving.rows(range.clone()).unwrap();
                assert_eq!((rows.first(), rows.len()), (range.start, range.len()));
                for i in range.clone() {
                    assert_eq!(rows.image(i), train.image(i), "image {i}");
                    assert_eq!(rows.get_image(i), Some(train.image(i)), "image {i}");
                    assert_eq!(rows.label(i), train.labels()[i], "label {i}");
                }
                assert_eq!(rows.get_image(range.end), None);
                assert_eq!(
                    range.start.checked_sub(1).and_then(|i| rows.get_image(i)),
                    None
                );
            }
            assert!(arriving.all_arrived());
            // Straddling two pieces, past the end, or empty.
            for range in [20..30, 24..26, 125..131, 130..131, 5..5] {
                assert_eq!(arriving.rows(range.clone()), None, "{range:?}");
            }
        })
        .unwrap();
    assert_eq!(mnist.train, train);
    assert_eq!(mnist.test, test);
    assert_eq!(Mnist::load(dir.path()).unwrap().train, train);
}

#[test]
fn damaged_training_images_fail_as_loading_them_whole_does() {
    let (train, test) = (synthetic(40, 3), synthetic(10, 4));
    let raw = images_file(&train);
    let good = gz(&raw);
    let mut cases = vec![good.clone()];
    // Cut inside the deflate data, inside the trailer, one byte short.
    for cut in [11, 30, good.len() / 2, good.len() - 6, good.len() - 1] {
        cases.push(good[..cut].to_vec());
    }
    for at in (10..good.len()).step_by(5) {
        let mut flipped = good.clone();
        flipped[at] ^= 0x24;
        cases.push(flipped);
    }
    cases.push(gz(&[&raw[..], &[7; 5]].concat())); // trailing bytes in the stream
    cases.push([good.clone(), good.clone()].concat()); // a second gzip member
    cases.push([good.clone(), vec![0; 3]].concat()); // garbage after the member
    cases.push(gz(&raw[..raw.len() - PIXELS])); // one image short of the header's count
    let dir = tempfile::tempdir().unwrap();
    let (images_path, labels_path) = (
        dir.path().join(FILE_NAMES[0]),
        dir.path().join(FILE_NAMES[1]),
    );
    let mut failures = 0;
    for (n, images) in cases.iter().enumerate() {
        write_files(dir.path(), images, &train, &test);
        let whole = Dataset::from_idx(
            images.clone(),
            &images_path,
            std::fs::read(&labels_path).unwrap(),
            &labels_path,
        )
        .map_err(|e| e.to_string());
        let arriving = Mnist::open(dir.path())
            .unwrap()
            .load_while(8, |arriving, _| {
                // Take every piece that arrives before the fault.
                let mut start = 0;
                while let Some(rows) = arriving.rows(start..(start + 8).min(40)) {
                    start += rows.len();
                }
            })
            .map(|(mnist, ())| mnist.train)
            .map_err(|e| e.to_string());
        assert_eq!(arriving, whole, "case {n}");
        failures += usize::from(whole.is_err());
    }
    assert!(failures >= cases.len() / 2, "only {failures} cases failed");
}

fn param_bits(trainer: &Trainer) -> Vec<u32> {
    trainer
        .model()
        .params()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// Every step's loss and every evaluation, as bits.
#[derive(Debug, Default, PartialEq)]
struct Record(Vec<(u64, u64)>);

impl Observer for Record {
    fn on_step(&mut self, trainer: &Trainer, stats: &StepStats) -> Result<(), String> {
        self.0.push((trainer.steps_done(), stats.loss.to_bits()));
        Ok(())
    }
    fn on_eval(&mut self, event: &EvalEvent<'_>) -> Result<(), String> {
        self.0.push((event.step, event.test.loss.to_bits()));
        self.0.push((event.step, event.train_loss.to_bits()));
        Ok(())
    }
}

/// Runs `config` from `dir` twice, started while loading and after loading, and asserts
/// the two give the same bits.
fn assert_same_as_loading_first(dir: &Path, order: BatchOrder, config: &RunConfig) -> f64 {
    let trainer = |examples| {
        Trainer::new(
            Model::softmax_regression(),
            Optimizer::sgd(0.1),
            examples,
            100,
            order,
            Some(2),
        )
    };
    let pending = Mnist::open(dir).unwrap();
    let mut early = trainer(pending.train_len().unwrap());
    let mut early_record = Record::default();
    let (mnist, early_summary) =
        run_while_loading(&mut early, pending, config, &mut early_record).unwrap();

    let mut late = trainer(mnist.train.len());
    let mut evaluator = Evaluator::new(late.model(), mnist.test.len(), Some(2));
    let mut late_record = Record::default();
    let late_summary = run(&mut late, &mnist, config, &mut evaluator, &mut late_record).unwrap();

    assert_eq!(mnist.train, Mnist::load(dir).unwrap().train);
    assert_eq!(param_bits(&early), param_bits(&late));
    assert_eq!(early.steps_done(), config.steps);
    assert_eq!(early_summary.history, late_summary.history);
    assert_eq!(early_summary.test, late_summary.test);
    assert_eq!(early_record, late_record);
    early_summary.test.accuracy
}

#[test]
fn a_run_started_while_loading_trains_what_a_run_after_loading_does() {
    let (train, test) = (synthetic(2500, 5), synthetic(300, 6));
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &gz(&images_file(&train)), &train, &test);
    // 2.4 epochs, so batches wrap around the end of the data; shuffled batches wait for it.
    let config = RunConfig {
        steps: 60,
        eval_every: 7,
        on_nan: OnNan::Stop,
    };
    for order in [BatchOrder::Sequential, BatchOrder::Shuffle { seed: 9 }] {
        let accuracy = assert_same_as_loading_first(dir.path(), order, &config);
        assert!(accuracy > 0.5, "{order:?}: accuracy {accuracy}");
    }
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn the_reference_run_started_while_loading_is_the_reference_run() {
    let dir = real_mnist_dir();
    let config = RunConfig {
        steps: 2000,
        eval_every: 100,
        on_nan: OnNan::Stop,
    };
    let accuracy = assert_same_as_loading_first(&dir, BatchOrder::Sequential, &config);
    assert!((accuracy - 0.9148).abs() <= 3e-4, "accuracy {accuracy}");
}

#[test]
fn a_resumed_run_started_while_loading_continues_as_the_uninterrupted_run() {
    // Real MNIST where it is (60 pieces, so the resumed run waits for the one it starts
    // in), else a small synthetic set.
    let temp = tempfile::tempdir().unwrap();
    let dir = find_mnist_dir().unwrap_or_else(|| {
        let (train, test) = (synthetic(2500, 7), synthetic(300, 8));
        write_files(temp.path(), &gz(&images_file(&train)), &train, &test);
        temp.path().to_path_buf()
    });
    let mnist = Mnist::load(&dir).unwrap();
    let config = RunConfig {
        steps: 70,
        eval_every: 10,
        on_nan: OnNan::Stop,
    };
    let trainer = || {
        Trainer::new(
            Model::softmax_regression(),
            Optimizer::new(OptimizerKind::Momentum { momentum: 0.9 }, 0.05, 7850),
            mnist.train.len(),
            100,
            BatchOrder::Sequential,
            Some(2),
        )
    };
    let mut straight = trainer();
    for _ in 0..37 {
        straight.step(&mnist.train);
    }
    // Resumed in the middle of a piece (example 3,700; of the second epoch, example 1,200,
    // with the synthetic set), with momentum state.
    let mut resumed = trainer();
    resumed.restore(
        straight.model().params(),
        straight.optimizer().clone(),
        straight.batch_position(),
        straight.steps_done(),
    );
    let mut evaluator = Evaluator::new(straight.model(), mnist.test.len(), Some(2));
    let straight_summary = run(
        &mut straight,
        &mnist,
        &config,
        &mut evaluator,
        &mut Record::default(),
    )
    .unwrap();
    let pending = Mnist::open(&dir).unwrap();
    let (_, resumed_summary) =
        run_while_loading(&mut resumed, pending, &config, &mut Record::default()).unwrap();
    assert_eq!(param_bits(&resumed), param_bits(&straight));
    assert_eq!(resumed_summary.history, straight_summary.history);
    assert_eq!(resumed_summary.history.first().map(|h| h.0), Some(40));
}
