//! The picture and prediction commands on a convolutional model file: each runs, and what it
//! prints or draws agrees with the library's forward pass.

use std::path::Path;

use softnet::data::PIXELS;
use softnet::nn::{Input, Workspace};

use crate::cli::{run_ok, softnet, write_data_dir};
use crate::common::synthetic;

/// Trains a small CNN on a synthetic data folder and returns (data folder, model file).
fn trained_cnn(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = root.join("data");
    write_data_dir(&data, 300, 100);
    let model = root.join("cnn.safetensors");
    run_ok(
        softnet()
            .args([
                "train",
                "--arch",
                "conv3x3x6,pool2,conv3x3x4,pool2,fc10",
                "--steps",
                "40",
                "--batch",
                "20",
                "--lr",
                "0.05",
                "--eval-every",
                "0",
                "-q",
                "--data",
            ])
            .arg(&data)
            .arg("--save")
            .arg(&model),
    );
    (data, model)
}

/// Width and height of a PNG file, from its header.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG", "{} is not a PNG", path.display());
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[test]
fn predict_weights_fool_calibration_and_report_take_a_cnn() {
    let root = tempfile::tempdir().unwrap();
    let (data, model_path) = trained_cnn(root.path());
    let model = softnet::io::load_model(&model_path).unwrap();

    // predict: three raw records, the classes of the forward pass.
    let images = synthetic(3, 9);
    let mut predict = softnet();
    predict
        .args(["predict", "--stdin", "--model"])
        .arg(&model_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = predict.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(images.pixels()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut ws = Workspace::inference(&model, 1);
    for (i, line) in stdout.lines().enumerate() {
        let pixels = &images.pixels()[i * PIXELS..][..PIXELS];
        let logits = model.inference(Input::Pixels(pixels), 1, &mut ws);
        let best = (0..10).fold(0, |b, c| if logits[c] > logits[b] { c } else { b });
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some(i.to_string().as_str()), "{line}");
        assert_eq!(words.next(), Some(best.to_string().as_str()), "{line}");
    }
    assert_eq!(stdout.lines().count(), 3, "{stdout}");

    // weights: every one of the six first-layer filters, 3x3 each, in a 2x4 grid.
    let png = root.path().join("filters.png");
    let out = run_ok(
        softnet()
            .args(["weights", "--model"])
            .arg(&model_path)
            .arg("-o")
            .arg(&png),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("conv3x3x6"));
    assert_eq!(
        png_size(&png),
        softnet::render::weights::weights_grid_size(6, 3, 4, true)
    );

    // fool --method fgsm: the sweep is printed and the picture written.
    let fooled = root.path().join("fgsm.png");
    let out = run_ok(
        softnet()
            .args(["fool", "--method", "fgsm", "--eps", "0.2", "--model"])
            .arg(&model_path)
            .arg("-o")
            .arg(&fooled)
            .arg("--data")
            .arg(&data),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FGSM at eps 0.2 on 100 test digits"),
        "{stdout}"
    );
    assert!(png_size(&fooled).0 > 0);

    // calibration: the accuracy it prints is the model's.
    let want = softnet::train::evaluate(&model, &softnet::data::Mnist::load(&data).unwrap().test);
    let out = run_ok(
        softnet()
            .args(["calibration", "--model"])
            .arg(&model_path)
            .arg("-o")
            .arg(root.path().join("calibration.png"))
            .arg("--data")
            .arg(&data),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("Accuracy: {:.4}", want.accuracy)),
        "{stdout} (want {})",
        want.accuracy
    );

    // report: an HTML page about this model, with the filters' section.
    let html = root.path().join("report.html");
    run_ok(
        softnet()
            .args(["report", "--model"])
            .arg(&model_path)
            .arg("-o")
            .arg(&html)
            .arg("--data")
            .arg(&data),
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("conv3x3x6,relu,pool2"),
        "the report names the model"
    );
    assert!(
        page.contains("The first convolution&#39;s filters")
            || page.contains("The first convolution's filters")
    );
}
