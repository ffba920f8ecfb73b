//! The inference engine: int8 accuracy on real MNIST, the baked fixture model on drawn
//! digits, quantized-file validation, the `predict` and `quantize` commands.

use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use softnet::data::{BatchOrder, Dataset, PIXELS};
use softnet::infer::Precision;
use softnet::io::quantized::{
    load_quantized_bytes, quantized_to_bytes, QUANTIZATION_INT8, QUANTIZATION_KEY,
};
use softnet::io::{load_any_model_bytes, AnyModel, QuantizedModel};
use softnet::nn::{Architecture, Model};
use softnet::optim::{Optimizer, OptimizerKind};
use softnet::train::Trainer;
use softnet::Classifier;

/// The model `softnet train -q --save` wrote (2000 SGD steps, 91.49% on the test set).
const FIXTURE: &[u8] = include_bytes!("../fixtures/softmax.safetensors");

fn train(arch: Architecture, data: &Dataset, steps: usize, lr: f32) -> Model {
    let model = Model::he_normal(arch, 1);
    let optimizer = Optimizer::new(OptimizerKind::Sgd, lr, model.params().len());
    let mut t = Trainer::new(
        model,
        optimizer,
        data.len(),
        100,
        BatchOrder::Shuffle { seed: 1 },
        None,
    );
    for _ in 0..steps {
        t.step(data);
    }
    t.into_model()
}

/// f32 and int8 test accuracy of `model`, checking the f32 engine against the trainer's.
fn accuracies(model: &Model, test: &Dataset) -> (f64, f64) {
    let reference = softnet::train::evaluate(model, test);
    let f32_engine = Classifier::from_model(model).unwrap().evaluate(test);
    // Same arithmetic up to summation order: at most a near-tie or two may flip.
    assert!(
        reference.correct.abs_diff(f32_engine.correct) <= 2,
        "{} vs {}",
        reference.correct,
        f32_engine.correct
    );
    assert!((reference.loss - f32_engine.loss).abs() < 1e-4);
    let q = QuantizedModel::quantize(model);
    let int8 = Classifier::from_quantized(&q).unwrap();
    assert_eq!(int8.precision(), Precision::Int8);
    (reference.accuracy, int8.evaluate(test).accuracy)
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn int8_loses_at_most_three_tenths_of_a_point_on_real_mnist() {
    let mnist = crate::common::real_mnist();
    // The tutorial: softmax regression, 2000 steps of 100, SGD 0.1 (he_normal is zero here).
    let softmax = train(Architecture::softmax_regression(), &mnist.train, 2000, 0.1);
    let (f, q) = accuracies(&softmax, &mnist.test);
    eprintln!("softmax regression: f32 {f:.4}, int8 {q:.4}");
    assert!(f > 0.90, "{f}");
    assert!(f - q <= 0.003, "f32 {f}, int8 {q}");
    // A 784-64-10 MLP, one epoch.
    let mlp = train(Architecture::mlp(&[64]), &mnist.train, 600, 0.1);
    let (f, q) = accuracies(&mlp, &mnist.test);
    eprintln!("mlp 784-64-10: f32 {f:.4}, int8 {q:.4}");
    assert!(f > 0.92, "{f}");
    assert!(f - q <= 0.003, "f32 {f}, int8 {q}");
}

#[test]
fn the_fixture_model_loads_from_bytes() {
    let c = Classifier::from_bytes(FIXTURE).unwrap();
    assert_eq!(c.precision(), Precision::F32);
    assert_eq!(c.architecture().describe(), "784-10");
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn the_fixture_model_matches_its_recorded_accuracy() {
    let c = Classifier::from_bytes(FIXTURE).unwrap();
    let mnist = crate::common::real_mnist();
    let AnyModel::F32(model) = load_any_model_bytes(FIXTURE, Path::new("fixture")).unwrap() else {
        panic!("the fixture is an f32 model");
    };
    assert_eq!(softnet::train::evaluate(&model, &mnist.test).correct, 9149);
    // The batch form agrees with the single-image form on the whole test set.
    let n = mnist.test.len();
    let mut classes = vec![0u8; n];
    let mut conf = vec![0.0f32; n];
    c.predict_batch(mnist.test.pixels(), &mut classes, &mut conf);
    let correct = classes
        .iter()
        .zip(mnist.test.labels())
        .filter(|(a, b)| a == b)
        .count();
    assert!(correct.abs_diff(9149) <= 2, "{correct}");
    let first: &[u8; PIXELS] = mnist.test.image(0).try_into().unwrap();
    assert_eq!(c.predict(first), (usize::from(classes[0]), conf[0]));
}

#[cfg(feature = "render")]
#[test]
fn the_fixture_model_reads_every_drawn_digit() {
    let names = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let f32_model = Classifier::from_bytes(FIXTURE).unwrap();
    let AnyModel::F32(model) = load_any_model_bytes(FIXTURE, Path::new("fixture")).unwrap() else {
        panic!("the fixture is an f32 model");
    };
    let int8 = Classifier::from_quantized(&QuantizedModel::quantize(&model)).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/drawn");
    for (digit, name) in names.iter().enumerate() {
        let png = std::fs::read(dir.join(format!("{name}.png"))).unwrap();
        let image = softnet::preprocess::mnist_from_png(&png).unwrap();
        for c in [&f32_model, &int8] {
            let (class, p) = c.predict(&image);
            assert_eq!(class, digit, "{name}.png read as {class} ({p})");
        }
    }
}

/// A quantized softmax file whose tensors are rebuilt by hand: `edit` may change one.
fn rebuilt(edit: impl Fn(&str, &mut Dtype, &mut Vec<usize>, &mut Vec<u8>)) -> Vec<u8> {
    let q = QuantizedModel::quantize(&Model::he_normal(Architecture::softmax_regression(), 2));
    let l = &q.layers()[0];
    let floats = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut tensors = vec![
        (
            "variables/Weight".to_string(),
            Dtype::I8,
            vec![784, 10],
            l.weight.iter().map(|&v| v as u8).collect::<Vec<u8>>(),
        ),
        (
            "variables/Weight_scale".to_string(),
            Dtype::F32,
            vec![10],
            floats(&l.scale),
        ),
        (
            "variables/Bias".to_string(),
            Dtype::F32,
            vec![10],
            floats(&l.bias),
        ),
    ];
    for (name, dtype, shape, bytes) in &mut tensors {
        edit(name, dtype, shape, bytes);
    }
    let views = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()));
    let meta = [
        ("architecture".to_string(), "784-10".to_string()),
        (QUANTIZATION_KEY.to_string(), QUANTIZATION_INT8.to_string()),
    ];
    safetensors::serialize(views, Some(meta.into_iter().collect())).unwrap()
}

fn refusal(bytes: &[u8]) -> String {
    let err = load_quantized_bytes(bytes, Path::new("q8.safetensors")).unwrap_err();
    let any = load_any_model_bytes(bytes, Path::new("q8.safetensors")).unwrap_err();
    assert_eq!(err.to_string(), any.to_string());
    let msg = err.to_string();
    assert!(msg.starts_with("q8.safetensors: "), "{msg}");
    msg
}

#[test]
fn quantized_files_are_validated() {
    let good = rebuilt(|_, _, _, _| {});
    assert!(load_quantized_bytes(&good, Path::new("q")).is_ok());

    // Truncated: every prefix is refused, none panics.
    for len in [0, 7, 8, 100, good.len() / 2, good.len() - 1] {
        let msg = refusal(&good[..len]);
        assert!(msg.contains("not a safetensors file"), "{len}: {msg}");
    }
    // Wrong dtype: the weights as u8.
    let bytes = rebuilt(|n, d, _, _| {
        if n == "variables/Weight" {
            *d = Dtype::U8;
        }
    });
    assert_eq!(
        refusal(&bytes),
        "q8.safetensors: tensor \"variables/Weight\" is U8, expected I8"
    );
    // Wrong dtype: scales as i32 (same byte count).
    let bytes = rebuilt(|n, d, _, _| {
        if n == "variables/Weight_scale" {
            *d = Dtype::I32;
        }
    });
    assert!(refusal(&bytes).contains("is I32, expected F32"));
    // Wrong shape: the transposed weight matrix.
    let bytes = rebuilt(|n, _, s, _| {
        if n == "variables/Weight" {
            *s = vec![10, 784];
        }
    });
    assert_eq!(
        refusal(&bytes),
        "q8.safetensors: tensor \"variables/Weight\" has shape [10, 784], expected [784, 10]"
    );
    // A missing scale tensor.
    let bytes = rebuilt(|n, _, s, b| {
        if n == "variables/Weight_scale" {
            *s = vec![1];
            b.truncate(4);
        }
    });
    assert!(refusal(&bytes).contains("has shape [1], expected [10]"));
    // -128 is outside the symmetric range.
    let bytes = rebuilt(|n, _, _, b| {
        if n == "variables/Weight" {
            b[5] = 0x80;
        }
    });
    assert!(refusal(&bytes).contains("holds -128"));
    // An unknown scheme.
    let mut bytes = good.clone();
    let at = bytes
        .windows(QUANTIZATION_INT8.len())
        .position(|w| w == QUANTIZATION_INT8.as_bytes())
        .unwrap();
    bytes[at] = b'u';
    assert!(refusal(&bytes).contains("unknown quantization"));
}

#[test]
fn an_f32_file_with_int8_tensors_is_refused() {
    // Without the quantization mark an I8 weight is a wrong dtype for an f32 model.
    let q = QuantizedModel::quantize(&Model::he_normal(Architecture::softmax_regression(), 2));
    let mut bytes = quantized_to_bytes(&q, &[]);
    let at = bytes
        .windows(QUANTIZATION_KEY.len())
        .position(|w| w == QUANTIZATION_KEY.as_bytes())
        .unwrap();
    bytes[at] = b'X';
    let err = load_any_model_bytes(&bytes, Path::new("m")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "m: unexpected tensor \"variables/Weight_scale\" for architecture 784-10"
    );
}

#[cfg(feature = "cli")]
mod cli {
    use std::io::Write;
    use std::process::{Command, Stdio};

    const SOFTNET: &str = env!("CARGO_BIN_EXE_softnet");

    fn fixture() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/softmax.safetensors")
    }

    #[test]
    fn predict_reads_raw_records_from_stdin() {
        let mut child = Command::new(SOFTNET)
            .args(["predict", "--stdin", "--model"])
            .arg(fixture())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = vec![0u8; 784 * 2];
        // A vertical bar in the middle of the second record.
        for row in 4..24 {
            input[784 + row * 28 + 14] = 255;
        }
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let fields: Vec<&str> = lines[1].split(' ').collect();
        assert_eq!(fields.len(), 5, "{text}");
        assert_eq!(fields[0], "1");
        assert_eq!(fields[1], "1", "a bar is a one: {text}");
        assert!(fields[2].starts_with("1:0."), "{text}");

        // A partial record is an error naming it.
        let mut child = Command::new(SOFTNET)
            .args(["predict", "--stdin", "--model"])
            .arg(fixture())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&[0u8; 800]).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("record 1: 16 of 784 bytes"), "{err}");
    }

    #[test]
    fn quantize_then_predict_pngs() {
        let dir = tempfile::tempdir().unwrap();
        let q8 = dir.path().join("m8.safetensors");
        let out = Command::new(SOFTNET)
            .args(["quantize", "--model"])
            .arg(fixture())
            .arg("-o")
            .arg(&q8)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let size = std::fs::metadata(&q8).unwrap().len();
        let f32_size = std::fs::metadata(fixture()).unwrap().len();
        assert!(f32_size as f64 / size as f64 > 3.5, "{f32_size} / {size}");
        let drawn = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/drawn");
        let out = Command::new(SOFTNET)
            .args(["predict", "--model"])
            .arg(&q8)
            .arg(drawn.join("seven.png"))
            .arg(drawn.join("three.png"))
            .arg(dir.path().join("missing.png"))
            .output()
            .unwrap();
        // The missing file fails the run, after the others are printed.
        assert_eq!(out.status.code(), Some(1));
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0][0].ends_with("seven.png") && lines[0][1] == "7",
            "{text}"
        );
        assert!(
            lines[1][0].ends_with("three.png") && lines[1][1] == "3",
            "{text}"
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("missing.png"), "{err}");
        assert!(err.contains("1 of 3 images could not be read"), "{err}");
    }
}

/// The no_std `ClassifierRef` against `Classifier` on the whole test set: the fixture
/// (dense f32) and its int8 twin equal bit for bit (f32 at the portable SIMD level, where
/// neither fuses its multiply-adds), a small CNN trained here the same class everywhere
/// but at near-ties, logits within 1e-5 of the largest.
#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn classifier_ref_equals_the_std_classifier_on_real_mnist() {
    use softnet::kernels::simd::{with_level, Level};
    use softnet::ClassifierRef;
    let mnist = crate::common::real_mnist();
    let test = &mnist.test;
    let AnyModel::F32(fixture) = load_any_model_bytes(FIXTURE, Path::new("fixture")).unwrap()
    else {
        panic!("the fixture is an f32 model");
    };
    let int8 = quantized_to_bytes(&QuantizedModel::quantize(&fixture), &[]);
    let cnn_model = train(
        Architecture::from_spec("conv5x5x8,pool2,conv3x3x16,pool2,fc10").unwrap(),
        &mnist.train,
        300,
        0.05,
    );
    let cnn = softnet::io::model_to_bytes(&cnn_model, &[]);
    for (name, bytes, bitwise) in [
        ("f32 softmax", FIXTURE, !Level::Portable.fuses_mul_add()),
        ("int8 softmax", &int8[..], true),
        ("f32 cnn", &cnn[..], false),
    ] {
        let ours = ClassifierRef::parse(bytes).unwrap();
        let std = Classifier::from_bytes(bytes).unwrap();
        let mut scratch = vec![0.0f32; ours.scratch_len()];
        let (mut a, mut b) = ([0.0f32; 10], [0.0f32; 10]);
        let (mut correct, mut differ, mut worst) = (0, 0, 0.0f32);
        for (image, &label) in test.pixels().chunks_exact(PIXELS).zip(test.labels()) {
            let image: &[u8; PIXELS] = image.try_into().unwrap();
            ours.logits_into(image, &mut scratch, &mut a);
            with_level(Level::Portable, || std.logits_into(image, &mut b));
            if bitwise {
                assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits), "{name}");
            }
            let spread = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            worst = worst.max(crate::common::max_abs_diff(&a, &b) / spread);
            let (class, _) = ours.predict(image, &mut scratch);
            correct += usize::from(class == usize::from(label));
            differ += usize::from(class != std.predict(image).0);
        }
        eprintln!(
            "{name}: ClassifierRef {correct} of {} right, {differ} differ from Classifier, \
             logits within {worst:e} of the largest",
            test.len()
        );
        assert!(worst <= 1e-5, "{name}: {worst}");
        assert!(differ <= 1, "{name}: {differ} predictions differ");
        if name == "f32 softmax" {
            assert!(correct.abs_diff(9149) <= 2, "{correct}");
        }
    }
}

/// One convolutional classifier serves several threads at once, each with its own
/// workspace, with the answers one thread gives.
#[test]
fn a_cnn_classifier_serves_many_threads() {
    let model = Model::he_normal(
        Architecture::from_spec("conv3x3x4,pool2,conv3x3x8s2,fc10").unwrap(),
        5,
    );
    let classifier = Classifier::from_model(&model).unwrap();
    let images: Vec<[u8; PIXELS]> = (0..16)
        .map(|s| std::array::from_fn(|i| ((i * 7 + s * 131) % 256) as u8))
        .collect();
    let want: Vec<(usize, f32)> = images.iter().map(|im| classifier.predict(im)).collect();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..5 {
                    let got: Vec<(usize, f32)> =
                        images.iter().map(|im| classifier.predict(im)).collect();
                    assert_eq!(got, want);
                }
            });
        }
    });
}
