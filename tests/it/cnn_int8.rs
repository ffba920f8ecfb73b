//! Int8 convolutional models end to end: the accuracy an int8 copy keeps on real MNIST and
//! its file size, and `softnet quantize`, `predict` and `eval` on an int8 CNN file.

use std::time::Instant;

use softnet::data::BatchOrder;
use softnet::infer::Precision;
use softnet::io::quantized::quantized_to_bytes;
use softnet::io::{model_to_bytes, QuantizedModel};
use softnet::kernels::conv_int8::Int8Path;
use softnet::nn::{Architecture, Model};
use softnet::optim::{Optimizer, OptimizerKind};
use softnet::train::Trainer;
use softnet::Classifier;

/// A CNN of the tutorial's shape, narrower (16 and 32 filters, 128 units), trained with
/// Adam for 300 steps of 50: the int8 copy loses at most a tenth of a point on the 10,000
/// test images, and its file is about 4x smaller.
#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn an_int8_cnn_loses_at_most_a_tenth_of_a_point_on_real_mnist() {
    let mnist = crate::common::real_mnist();
    let started = Instant::now();
    let arch =
        Architecture::from_spec("conv5x5x16,pool2,conv5x5x32,pool2,fc128,dropout0.5,fc10").unwrap();
    let model = Model::he_normal(arch, 1);
    let adam = OptimizerKind::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let optimizer = Optimizer::new(adam, 1e-3, model.params().len());
    let mut trainer = Trainer::new(
        model,
        optimizer,
        mnist.train.len(),
        50,
        BatchOrder::Shuffle { seed: 1 },
        None,
    );
    for _ in 0..300 {
        trainer.step(&mnist.train);
    }
    let model = trainer.into_model();
    let trained = started.elapsed();

    let f32_bytes = model_to_bytes(&model, &[]);
    let q = QuantizedModel::quantize(&model);
    let int8_bytes = quantized_to_bytes(&q, &[]);
    let ratio = f32_bytes.len() as f64 / int8_bytes.len() as f64;
    let f32_result = softnet::train::evaluate(&model, &mnist.test);
    let int8 = Classifier::from_bytes(&int8_bytes).unwrap();
    assert_eq!(int8.precision(), Precision::Int8);
    let int8_result = int8.evaluate(&mnist.test);
    // The f32 classifier agrees with the trainer's evaluation.
    let f32_engine = Classifier::from_bytes(&f32_bytes)
        .unwrap()
        .evaluate(&mnist.test);
    assert!(f32_engine.correct.abs_diff(f32_result.correct) <= 2);
    eprintln!(
        "{}: f32 {} of 10000, int8 {} ({} path); {} / {} bytes = {ratio:.2}x; trained in \
         {:.1} s, all in {:.1} s",
        model.architecture().describe(),
        f32_result.correct,
        int8_result.correct,
        Int8Path::current().name(),
        f32_bytes.len(),
        int8_bytes.len(),
        trained.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(f32_result.accuracy > 0.95, "{}", f32_result.accuracy);
    assert!(
        f32_result.correct <= int8_result.correct + 10,
        "f32 {} correct, int8 {}",
        f32_result.correct,
        int8_result.correct
    );
    assert!((3.9..4.05).contains(&ratio), "{ratio}");
}

/// `softnet quantize` on a CNN trained by the CLI, then `predict` and `eval` on the int8
/// file: the classes and the accuracy of the library's int8 classifier.
#[cfg(feature = "cli")]
#[test]
fn quantize_predict_and_eval_take_a_cnn() {
    use std::io::Write;

    use crate::cli::{eval, quantize, run_ok, softnet, write_data_dir};
    use softnet::data::{Mnist, PIXELS};

    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    write_data_dir(&data, 300, 100);
    let f32_path = root.path().join("cnn.safetensors");
    run_ok(
        softnet()
            .args(["train", "--arch", "conv3x3x6,pool2,conv3x3x16,pool2,fc10"])
            .args(["--steps", "40", "--batch", "20", "--lr", "0.05"])
            .args(["--eval-every", "0", "-q", "--data"])
            .arg(&data)
            .arg("--save")
            .arg(&f32_path),
    );
    let q8 = root.path().join("cnn8.safetensors");
    let stdout = quantize(&f32_path, &q8);
    assert!(stdout.contains("int8"), "{stdout}");
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len() as f64;
    assert!(size(&f32_path) / size(&q8) > 3.5, "{stdout}");
    let classifier = Classifier::from_file(&q8).unwrap();
    assert_eq!(classifier.precision(), Precision::Int8);
    let test = Mnist::load(&data).unwrap().test;

    // predict: raw records on stdin, one line each, the library's classes.
    let mut child = softnet()
        .args(["predict", "--stdin", "--model"])
        .arg(&q8)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let images = &test.pixels()[..5 * PIXELS];
    child.stdin.take().unwrap().write_all(images).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    for (i, line) in stdout.lines().enumerate() {
        let image: &[u8; PIXELS] = images[i * PIXELS..][..PIXELS].try_into().unwrap();
        let (class, _) = classifier.predict(image);
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[..2], [i.to_string(), class.to_string()], "{line}");
    }

    // eval: the accuracy of the int8 classifier on the folder's test set.
    let stdout = eval(&q8, &data);
    let want = format!("Accuracy: {:.4}", classifier.evaluate(&test).accuracy);
    assert!(stdout.contains(&want), "{stdout} (want {want})");
}
