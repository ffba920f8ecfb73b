//! `softnet bench` on the tutorial's CNN and `softnet bench --compare`: the keys a user
//! tracks, and a regression check against a saved run.

use crate::cli::{assert_finite_and_positive, run_ok, softnet, write_data_dir};

/// The CNN's keys (training images a second, one image, 10,000 images) come with their
/// GFLOP/s and shares of the ceiling, and the `metrics` object with the spread of each
/// measurement's repeats; `--compare` reads that file back, measurement by measurement.
#[test]
fn bench_measures_the_cnn_and_compares_with_a_saved_run() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // 200 test images: the 10,000-image key repeats them to 10,000.
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
            "--data",
        ])
        .arg(&data)
        .args(extra);
        String::from_utf8(run_ok(&mut cmd).stdout).unwrap()
    };
    let text = bench(&["--json"]);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys = [
        "cnn_train_images_per_s",
        "cnn_train_gflops",
        "cnn_train_ceiling_share",
        "cnn_infer_1_us",
        "cnn_infer_1_gflops",
        "cnn_infer_1_ceiling_share",
        "cnn_infer_10k_ms",
        "cnn_infer_10k_gflops",
        "cnn_infer_10k_ceiling_share",
        "cnn8_infer_1_us",
        "cnn8_infer_1_gflops",
        "cnn8_infer_10k_ms",
        "cnn8_infer_10k_gflops",
        "memory_read_1t_gbps",
        "memory_read_gbps",
        "cnn_infer_1_memory_floor_us",
        "cnn_infer_1_memory_share",
        "cnn_infer_1_pool_us",
        "cnn_infer_1_pool_gflops",
        "cnn_infer_1_pool_memory_floor_us",
    ];
    assert_finite_and_positive(&json, &keys, &json);
    // The read is of the CNN's f32 weights, and the floor is those bytes at the one-thread
    // rate.
    let bytes = json["memory_read_bytes"].as_f64().unwrap();
    assert_eq!(bytes, 4.0 * 3_274_634.0, "{json}");
    let floor = bytes / (json["memory_read_1t_gbps"].as_f64().unwrap() * 1e3);
    let reported_floor = json["cnn_infer_1_memory_floor_us"].as_f64().unwrap();
    assert!((floor / reported_floor - 1.0).abs() < 1e-9, "{json}");
    let kernels = json["int8_kernels"].as_str().unwrap();
    assert!(["vnni", "portable"].contains(&kernels), "{json}");
    // The rate is the work over the time: 10,000 forward passes of 27.8 MFLOP each.
    let gflops = 10_000.0 * 27.767_808e-3 / (json["cnn_infer_10k_ms"].as_f64().unwrap() / 1e3);
    let reported = json["cnn_infer_10k_gflops"].as_f64().unwrap();
    assert!(
        (gflops / reported - 1.0).abs() < 1e-9,
        "{gflops} vs {reported}"
    );
    let share = reported / json["fma_peak_gflops"].as_f64().unwrap();
    let reported_share = json["cnn_infer_10k_ceiling_share"].as_f64().unwrap();
    assert!((share / reported_share - 1.0).abs() < 1e-9, "{json}");
    // One image on one thread against its ceiling, on the run's threads against theirs.
    let share_1 =
        json["cnn_infer_1_gflops"].as_f64().unwrap() / json["fma_peak_1t_gflops"].as_f64().unwrap();
    assert!((share_1 / json["cnn_infer_1_ceiling_share"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    let share_pool = json["cnn_infer_1_pool_gflops"].as_f64().unwrap()
        / json["fma_peak_gflops"].as_f64().unwrap();
    let reported_pool = json["cnn_infer_1_pool_ceiling_share"].as_f64().unwrap();
    assert!((share_pool / reported_pool - 1.0).abs() < 1e-9, "{json}");
    // Training steps timed one by one: their quartiles bracket the median.
    let train = &json["metrics"]["cnn_train_images_per_s"];
    assert_eq!(train["unit"], "1/s", "{train}");
    let (q1, median, q3) = (
        train["q1"].as_f64().unwrap(),
        train["median"].as_f64().unwrap(),
        train["q3"].as_f64().unwrap(),
    );
    assert!(q1 <= median && median <= q3, "{train}");
    assert!(train["repeats"].as_u64().unwrap() >= 5, "{train}");

    let base = root.path().join("base.json");
    std::fs::write(&base, &text).unwrap();
    // Without the CNN this time: its keys are listed as the base run's only.
    let out = bench(&["--no-cnn", "--compare", base.to_str().unwrap()]);
    assert!(out.contains("the base run → this run"), "{out}");
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in\n{out}"))
            .to_string()
    };
    assert!(line("train_only_s ").contains("of ceiling"), "{out}");
    assert!(line("process_s ").contains(" s → "), "{out}");
    assert!(
        out.contains(
            "only in the base run: cnn8_infer_10k_ms, cnn8_infer_1_us, cnn_infer_10k_ms, \
             cnn_infer_1_pool_us, cnn_infer_1_us, cnn_train_images_per_s"
        ),
        "{out}"
    );
    assert!(out.contains("regressed,"), "{out}");
}

/// A baseline that cannot be used fails at once (before any measuring), naming the file;
/// `--compare` takes no `--json` or `--scaling`.
#[test]
fn bench_compare_refuses_a_bad_baseline_by_name() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    write_data_dir(&data, 100, 20);
    let bad = root.path().join("scaling.json");
    std::fs::write(&bad, r#"{"scaling": [], "identical_results": true}"#).unwrap();
    let broken = root.path().join("broken.json");
    std::fs::write(&broken, "{\"threads\": 2,").unwrap();
    let missing = root.path().join("missing.json");
    for (file, message) in [
        (&bad, "no \"metrics\" object"),
        (&broken, "is not JSON"),
        (&missing, "cannot read the baseline"),
    ] {
        let out = softnet()
            .args(["bench", "--compare"])
            .arg(file)
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(message), "{err}");
        assert!(err.contains(&*file.to_string_lossy()), "{err}");
        assert!(out.stdout.is_empty(), "measured before failing");
    }
    for flag in ["--json", "--scaling"] {
        let out = softnet()
            .args(["bench", flag, "--compare"])
            .arg(&bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}");
    }
}
