//! The `softnet` binary on bad input: each case, its exit code (2 usage, 1 runtime) and the
//! key part of its error message. No case may panic, hang or succeed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::synthetic;
pub use crate::common::{gzip, idx_images, idx_labels};

/// The built binary.
pub fn softnet() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_softnet"));
    // Never let the caller's MNIST_DIR stand in for a folder a test means to be missing, and
    // never go to the internet for a folder that is missing.
    cmd.env_remove("MNIST_DIR").env("SOFTNET_OFFLINE", "1");
    cmd
}

/// Runs `cmd` and returns its output, failing the test with its stderr if it failed.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `softnet quantize --model MODEL -o OUT`, which must succeed; its standard output.
pub fn quantize(model: &Path, out: &Path) -> String {
    let done = run_ok(
        softnet()
            .args(["quantize", "--model"])
            .arg(model)
            .arg("-o")
            .arg(out),
    );
    String::from_utf8_lossy(&done.stdout).into_owned()
}

/// `softnet eval --model MODEL --data DATA`, which must succeed; its standard output.
pub fn eval(model: &Path, data: &Path) -> String {
    let done = run_ok(
        softnet()
            .args(["eval", "--model"])
            .arg(model)
            .arg("--data")
            .arg(data),
    );
    String::from_utf8_lossy(&done.stdout).into_owned()
}

/// The four raw IDX files of a small learnable dataset (`train` + `test` examples) in `dir`.
pub fn write_data_dir(dir: &Path, train: usize, test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n, seed) in [("train", train, 1), ("t10k", test, 2)] {
        let d = synthetic(n, seed);
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            idx_images(d.pixels(), n as u32),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            idx_labels(d.labels()),
        )
        .unwrap();
    }
}

fn run(cmd: &mut Command) -> (i32, String) {
    let Output { status, stderr, .. } = cmd.output().expect("the binary runs");
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "the binary panicked:\n{stderr}"
    );
    (status.code().expect("exited, not killed"), stderr)
}

/// A folder with valid data in which `file` is replaced by `bytes`.
fn data_with(root: &Path, case: &str, file: &str, bytes: &[u8]) -> PathBuf {
    let dir = root.join(case);
    write_data_dir(&dir, 200, 50);
    if file.ends_with(".gz") {
        std::fs::remove_file(dir.join(file.trim_end_matches(".gz"))).unwrap();
    }
    std::fs::write(dir.join(file), bytes).unwrap();
    dir
}

#[test]
fn bad_data_files_fail_with_exit_1_and_name_the_file_and_problem() {
    let root = tempfile::tempdir().unwrap();
    let d = synthetic(200, 1);
    let images = idx_images(d.pixels(), 200);
    let labels = idx_labels(d.labels());
    let gz = gzip(&images);
    let mut corrupt_gz = gz.clone();
    let mid = corrupt_gz.len() / 2;
    for b in &mut corrupt_gz[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let mut wrong_magic = images.clone();
    wrong_magic[3] = 2;
    let mut label_10 = labels.clone();
    label_10[8 + 3] = 10;
    let mut short_pixels = images.clone();
    short_pixels.truncate(images.len() - 100);
    let mut no_header = images.clone();
    no_header.truncate(10);
    let ti = "train-images-idx3-ubyte";
    let tl = "train-labels-idx1-ubyte";
    let cases: Vec<(&str, &str, Vec<u8>, String)> = vec![
        (
            "truncated-gzip",
            "train-images-idx3-ubyte.gz",
            gz[..gz.len() / 2].to_vec(),
            "train-images-idx3-ubyte.gz: corrupt gzip data: ".into(),
        ),
        (
            "corrupt-gzip",
            "train-images-idx3-ubyte.gz",
            corrupt_gz,
            "train-images-idx3-ubyte.gz: corrupt gzip data: ".into(),
        ),
        (
            "wrong-magic",
            ti,
            wrong_magic,
            format!("{ti}: bad magic number 0x00000802, expected 0x00000803"),
        ),
        (
            "count-mismatch",
            tl,
            idx_labels(&d.labels()[..199]),
            "200 images but 199 labels".into(),
        ),
        (
            "label-10",
            tl,
            label_10,
            format!("{tl}: label 10 at index 3 is not a class in 0..10"),
        ),
        (
            "truncated-pixels",
            ti,
            short_pixels,
            format!(
                "{ti}: truncated: expected {} bytes, found {}",
                16 + 200 * 784,
                16 + 200 * 784 - 100
            ),
        ),
        (
            "truncated-header",
            ti,
            no_header,
            format!("{ti}: truncated: expected 16 bytes, found 10"),
        ),
        ("empty", ti, Vec::new(), format!("{ti}: the file is empty")),
    ];
    for (case, file, bytes, expected) in &cases {
        let dir = data_with(root.path(), case, file, bytes);
        let (code, err) = run(softnet()
            .args(["train", "--steps", "5", "-q", "--data"])
            .arg(&dir));
        assert_eq!(code, 1, "{case}: {err}");
        assert!(err.starts_with("error: "), "{case}: {err}");
        assert!(
            err.contains(expected.as_str()),
            "{case}: {err:?} lacks {expected:?}"
        );
    }
    eprintln!("{} bad data files tried", cases.len());
}

#[test]
fn missing_folders_and_unwritable_outputs_fail_before_training() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    write_data_dir(&data, 200, 50);
    let (code, err) = run(softnet().args(["train", "--data", "/nonexistent/mnist"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: MNIST data not found in /nonexistent/mnist."),
        "{err}"
    );
    let (code, err) = run(softnet()
        .args([
            "train",
            "--steps",
            "5",
            "--save",
            "/nonexistent/dir/m.safetensors",
            "--data",
        ])
        .arg(&data));
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err.trim_end(),
        "error: cannot save the model to /nonexistent/dir/m.safetensors: folder /nonexistent/dir does not exist"
    );
    let (code, err) = run(softnet()
        .args(["train", "--steps", "5", "--save"])
        .arg(root.path())
        .arg("--data")
        .arg(&data));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(": it is a folder"), "{err}");
    let (code, err) = run(softnet()
        .args(["eval", "--model", "/nonexistent/m.safetensors", "--data"])
        .arg(&data));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: /nonexistent/m.safetensors: No such file or directory"),
        "{err}"
    );
    // A checkpoint folder that cannot be created.
    let (code, err) = run(softnet()
        .args([
            "train",
            "--steps",
            "5",
            "-q",
            "--checkpoint-dir",
            "/proc/softnet-ckpt",
            "--data",
        ])
        .arg(&data));
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error: /proc/softnet-ckpt: "), "{err}");
    let (code, err) = run(softnet()
        .args(["train", "--steps", "5", "--resume"])
        .arg(root.path())
        .arg("--data")
        .arg(&data));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(": no checkpoint (ckpt-*.safetensors) to resume from"),
        "{err}"
    );
}

/// A safetensors file with one F32/F64 tensor per (name, dtype, shape).
fn safetensors_file(tensors: &[(&str, safetensors::Dtype, Vec<usize>)], meta: &str) -> Vec<u8> {
    let buffers: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, dtype, shape)| vec![0u8; shape.iter().product::<usize>() * dtype.bitsize() / 8])
        .collect();
    let views = tensors
        .iter()
        .zip(&buffers)
        .map(|((name, dtype, shape), b)| {
            (
                name.to_string(),
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), b).unwrap(),
            )
        });
    let metadata = (!meta.is_empty())
        .then(|| std::collections::HashMap::from([("architecture".to_string(), meta.to_string())]));
    safetensors::serialize(views, metadata).unwrap()
}

#[test]
fn bad_model_files_fail_with_exit_1_and_say_what_is_wrong() {
    use safetensors::Dtype::{F32, F64};
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    write_data_dir(&data, 200, 50);
    let (w, b) = ("variables/Weight", "variables/Bias");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "wrong-shape",
            safetensors_file(&[(w, F32, vec![10, 784]), (b, F32, vec![10])], "784-10"),
            "tensor \"variables/Weight\" has shape [10, 784], expected [784, 10]",
        ),
        (
            "wrong-dtype",
            safetensors_file(&[(w, F64, vec![784, 10]), (b, F32, vec![10])], "784-10"),
            "tensor \"variables/Weight\" is F64, expected F32",
        ),
        (
            "missing-bias",
            safetensors_file(&[(w, F32, vec![784, 10])], "784-10"),
            "missing tensor \"variables/Bias\"",
        ),
        (
            "bad-architecture",
            safetensors_file(&[(w, F32, vec![784, 10])], "seven"),
            "metadata architecture \"seven\" is not like 784-256-10",
        ),
        (
            "not-safetensors",
            b"PK\x03\x04 this is a zip file".to_vec(),
            "not a safetensors file",
        ),
        ("empty", Vec::new(), "not a safetensors file"),
    ];
    for (case, bytes, expected) in &cases {
        let path = root.path().join(format!("{case}.safetensors"));
        std::fs::write(&path, bytes).unwrap();
        let (code, err) = run(softnet()
            .args(["eval", "--model"])
            .arg(&path)
            .arg("--data")
            .arg(&data));
        assert_eq!(code, 1, "{case}: {err}");
        let want = format!("error: {}: ", path.display());
        assert!(err.starts_with(&want), "{case}: {err}");
        assert!(err.contains(expected), "{case}: {err:?} lacks {expected:?}");
    }
    eprintln!("{} bad model files tried", cases.len());
}

#[test]
fn nonsense_flags_are_usage_errors_with_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--batch", "0"],
            "invalid value '0' for '--batch <BATCH>': must be at least 1",
        ),
        (&["--batch", "-3"], "unexpected argument '-3'"),
        (&["--lr", "-1"], "unexpected argument '-1'"),
        (
            &["--lr=-1"],
            "invalid value '-1' for '--lr <LR>': must be a finite number above 0",
        ),
        (
            &["--lr", "nan"],
            "invalid value 'nan' for '--lr <LR>': must be a finite number above 0",
        ),
        (
            &["--lr", "inf"],
            "invalid value 'inf' for '--lr <LR>': must be a finite number above 0",
        ),
        (
            &["--lr", "0"],
            "invalid value '0' for '--lr <LR>': must be a finite number above 0",
        ),
        (
            &["--steps", "99999999999"],
            "invalid value '99999999999' for '--steps <STEPS>': must be between 1 and 1000000000",
        ),
        (&["--steps", "0"], "must be between 1 and 1000000000"),
        (
            &["--steps", "1e3"],
            "invalid value '1e3' for '--steps <STEPS>': invalid digit",
        ),
        (
            &["--threads", "0"],
            "invalid value '0' for '--threads <THREADS>': must be at least 1",
        ),
        (&["--momentum", "1"], "must be in [0, 1)"),
        (
            &["--hidden", "256,0"],
            "hidden width \"0\": must be at least 1",
        ),
        (
            &["--order", "random"],
            "invalid value 'random' for '--order <ORDER>'",
        ),
        (
            &["--checkpoint-every", "0"],
            "must be between 1 and 1000000000",
        ),
        (&["--steps", "5", "--epochs", "1"], "cannot be used with"),
        (&["--no-such-flag"], "unexpected argument '--no-such-flag'"),
    ];
    for (args, expected) in cases {
        let (code, err) = run(softnet().arg("train").args(*args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: {err:?} lacks {expected:?}"
        );
    }
    let (code, err) = run(softnet().arg("frobnicate"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("unrecognized subcommand 'frobnicate'"),
        "{err}"
    );
    let (code, err) = run(&mut softnet());
    assert_eq!(code, 2, "{err}");
    eprintln!("{} nonsense flag sets tried", cases.len() + 2);
}

#[test]
fn divergence_stops_with_the_step_and_saves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    write_data_dir(&data, 200, 50);
    let model = root.path().join("m.safetensors");
    let (code, err) = run(softnet()
        .args([
            "train", "--steps", "50", "--lr", "1e6", "--batch", "20", "-q", "--save",
        ])
        .arg(&model)
        .arg("--data")
        .arg(&data));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: training diverged at step "),
        "{err}"
    );
    assert!(err.contains("(try a smaller --lr)"), "{err}");
    assert!(!model.exists(), "no model is written after a divergence");
}

/// `softnet train | head -1`: when the reader goes away, the process ends by SIGPIPE as other
/// Unix tools do, not with a panic about a broken pipe.
#[cfg(unix)]
#[test]
fn output_into_a_closed_pipe_ends_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    write_data_dir(&data, 300, 50);
    let mut child = softnet()
        .args([
            "train",
            "--steps",
            "20",
            "--batch",
            "10",
            "--eval-every",
            "5",
            "--data",
        ])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader is gone before the first evaluation prints its line.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    const SIGPIPE: i32 = 13;
    assert_eq!(
        out.status.signal(),
        Some(SIGPIPE),
        "{:?}: {err}",
        out.status
    );
}

/// `softnet bench --scaling --json` gives the throughput curve over the thread counts asked
/// for (each a measured, positive rate, the first the baseline of the speedups) and checks
/// that every thread count trained the same weights.
#[test]
fn bench_scaling_reports_the_curve_and_thread_invariance() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    write_data_dir(&data, 1000, 200);
    let mut cmd = softnet();
    cmd.args([
        "bench",
        "--scaling",
        "--json",
        "--scaling-threads",
        "1,2,3",
        "--scaling-steps",
        "2",
        "--repeats",
        "1",
        "--data",
    ])
    .arg(&data);
    let out = String::from_utf8(run_ok(&mut cmd).stdout).unwrap();
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["identical_results"], true, "{json}");
    let points = json["scaling"]
        .as_array()
        .unwrap_or_else(|| panic!("{json}"));
    let threads: Vec<_> = points.iter().map(|p| p["threads"].as_u64()).collect();
    assert_eq!(threads, [Some(1), Some(2), Some(3)]);
    for point in points {
        let keys = [
            "mlp_samples_per_s",
            "softmax_samples_per_s",
            "cnn_train_images_per_s",
            "mlp_speedup",
            "softmax_speedup",
            "cnn_speedup",
        ];
        assert_finite_and_positive(point, &keys, &json);
    }
    assert_eq!(points[0]["mlp_speedup"].as_f64(), Some(1.0));
    assert_eq!(points[0]["cnn_speedup"].as_f64(), Some(1.0));
    assert_eq!(points[0]["softmax_speedup"].as_f64(), Some(1.0));
    let mut zero = softnet();
    zero.args(["bench", "--scaling", "--scaling-threads", "0", "--data"])
        .arg(&data);
    assert_eq!(zero.output().unwrap().status.code(), Some(2));
}

/// Each of `keys` in `object` is a finite number above 0 (`report` is printed on failure).
pub fn assert_finite_and_positive(
    object: &serde_json::Value,
    keys: &[&str],
    report: &serde_json::Value,
) {
    for key in keys {
        let value = object[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {report}"));
        assert!(value.is_finite() && value > 0.0, "{key} = {value}");
    }
}

/// `softnet bench --json` carries every key the performance issue names, each a measured,
/// finite, positive number (the machine's FMA ceiling included); the table names the targets
/// and each rate's fraction of that ceiling.
#[test]
fn bench_reports_every_tracked_number_and_the_machines_ceiling() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    write_data_dir(&data, 1000, 200);
    let bench = |extra: &[&str]| {
        let mut cmd = softnet();
        cmd.args([
            "bench",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--no-mlp",
            "--no-cnn",
            "--data",
        ])
        .arg(&data)
        .args(extra);
        String::from_utf8(run_ok(&mut cmd).stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&bench(&["--json"])).unwrap();
    let keys = [
        "reference_run_s",
        "train_only_s",
        "process_s",
        "load_s",
        "infer_1_us",
        "infer_10k_ms",
        "infer_10k_first_ms",
        "peak_rss_mb",
        "mlp_infer_1_us",
        "fma_peak_gflops",
        "fma_peak_1t_gflops",
    ];
    assert_finite_and_positive(&json, &keys, &json);
    assert!(json["mlp_epoch_s"].is_null(), "--no-mlp: {json}");
    assert!(json["cnn_train_images_per_s"].is_null(), "--no-cnn: {json}");
    assert_eq!(json["threads"], 1);
    // 2000 steps of 100 rows take longer than 200 of them: the run really trains.
    assert!(json["reference_run_s"].as_f64() > json["infer_10k_ms"].as_f64().map(|ms| ms / 1e3));
    let table = bench(&[]);
    assert!(table.contains("this machine's f32 FMA peak"), "{table}");
    for line in ["reference run: 2000 steps", "2000 training steps alone"] {
        let row = table
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("{table}"));
        // The measured time and the target, both in milliseconds.
        assert_eq!(row.matches(" ms").count(), 2, "{row}");
    }
    assert_eq!(table.matches("% of peak").count(), 2, "{table}");
}

/// What a newcomer reads: `train --help` groups its flags under headings in the order a run
/// is set up; `--save` says where the model went; an OS error is printed once.
#[test]
fn help_is_grouped_save_says_where_and_os_errors_print_once() {
    let out = run_ok(softnet().args(["train", "--help"]));
    let help = String::from_utf8_lossy(&out.stdout);
    let headings: Vec<&str> = help
        .lines()
        .filter(|l| !l.starts_with(' ') && l.ends_with(':'))
        .collect();
    assert_eq!(
        headings,
        [
            "Options:",
            "Data:",
            "Model:",
            "Optimiser:",
            "Schedule:",
            "Output:",
            "Checkpoints:"
        ],
        "{help}"
    );
    let words: Vec<&str> = help.split_whitespace().collect();
    assert!(
        words
            .join(" ")
            .contains("against the published MNIST files before using them"),
        "{help}"
    );

    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    write_data_dir(&data, 200, 50);
    let model = root.path().join("m.safetensors");
    let out = run_ok(
        softnet()
            .args(["train", "--steps", "5", "--save"])
            .arg(&model)
            .arg("--data")
            .arg(&data),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l == format!("model saved to {}", model.display())),
        "{err}"
    );

    let (code, err) = run(softnet()
        .args(["eval", "--model", "/nonexistent/m.safetensors", "--data"])
        .arg(&data));
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: /nonexistent/m.safetensors: No such file or directory (os error 2)\n"
    );
}
