//! Helpers shared by the integration tests.

use std::path::PathBuf;

use softnet::data::{Dataset, Mnist, PIXELS};

// Tests that need real MNIST or the TensorFlow reference outputs carry
// `#[cfg_attr(softnet_no_mnist, ignore = "...")]` (or `softnet_no_reference`): build.rs sets
// these where the folders below are absent, so such a test shows as `ignored` in the summary
// instead of passing unchecked. With SOFTNET_REQUIRE_DATA=1 it never sets them, and a missing
// folder fails the test with the message of `missing`.

/// Where real MNIST is: `$MNIST_DIR`, else `../shared/data/mnist` beside the repository (the
/// same order as build.rs), if the training images are there.
pub fn find_mnist_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MNIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/data/mnist"));
    ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"]
        .iter()
        .any(|f| dir.join(f).is_file())
        .then_some(dir)
}

/// The folder of the real MNIST files. Only for tests ignored under `softnet_no_mnist`.
pub fn real_mnist_dir() -> PathBuf {
    find_mnist_dir().unwrap_or_else(|| missing("MNIST", "MNIST_DIR", "../shared/data/mnist"))
}

/// The real MNIST files, loaded. Only for tests ignored under `softnet_no_mnist` (and without
/// the `gz` feature, since the shared files are gzip'd).
pub fn real_mnist() -> Mnist {
    let dir = real_mnist_dir();
    Mnist::load(&dir).unwrap_or_else(|e| panic!("the MNIST files in {} load: {e}", dir.display()))
}

/// The TensorFlow reference outputs (`tf_seed_2000/`, `mlp_784_256_10/`, ...):
/// `$SOFTNET_REFERENCE_DIR`, else `../shared/reference`. Only for tests ignored under
/// `softnet_no_reference`.
pub fn reference_dir() -> PathBuf {
    let dir = std::env::var_os("SOFTNET_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/reference"));
    if !dir.join("tf_seed_2000").is_dir() {
        missing(
            "the TensorFlow reference outputs",
            "SOFTNET_REFERENCE_DIR",
            "../shared/reference",
        );
    }
    dir
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails a test that needs data it cannot find, saying where it looked and why it ran at all.
fn missing(what: &str, var: &str, default: &str) -> ! {
    panic!(
        "{what} not found (${var}, else {default} beside the repository). This test runs only \
         where build.rs found it or SOFTNET_REQUIRE_DATA=1 asks for it; set {var}, or run \
         `touch build.rs` after adding the folder."
    )
}

/// A synthetic dataset: `n` random images whose label is a simple function of the pixels,
/// so models can learn it.
pub fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let mut pixels = vec![0u8; n * PIXELS];
    let mut labels = vec![0u8; n];
    for (i, label) in labels.iter_mut().enumerate() {
        let class = (next() % 10) as usize;
        *label = class as u8;
        let img = &mut pixels[i * PIXELS..(i + 1) * PIXELS];
        for (p, v) in img.iter_mut().enumerate() {
            let noise = (next() % 64) as u8;
            // Each class lights up its own band of rows.
            *v = if (p / 28) / 3 == class {
                160 + noise
            } else {
                noise
            };
        }
    }
    Dataset::new(pixels, labels)
}

/// Reads a reference `.npy` file (the error names the file).
pub fn npy(path: &std::path::Path) -> softnet::io::npy::NpyArray {
    softnet::io::npy::read_npy(path).unwrap_or_else(|e| panic!("{e}"))
}

/// IDX images file bytes (magic 0x803) of `count` 28x28 images.
pub fn idx_images(pixels: &[u8], count: u32) -> Vec<u8> {
    let mut f = vec![0, 0, 8, 3];
    for d in [count, 28, 28] {
        f.extend_from_slice(&d.to_be_bytes());
    }
    f.extend_from_slice(pixels);
    f
}

/// IDX labels file bytes (magic 0x801).
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 8, 1];
    f.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    f.extend_from_slice(labels);
    f
}

/// `bytes` gzip'd (fast level).
#[cfg(feature = "gz")]
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// The largest elementwise difference between two tensors of the same length.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
