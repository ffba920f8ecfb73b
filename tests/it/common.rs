//! Helpers shared by the integration tests.

use std::path::PathBuf;

use softnet::data::{Dataset, Mnist, PIXELS};

/// `../shared` beside the repository (CI lays it there).
pub fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// The folder of the real MNIST files, or None (with a note) where `../shared` is absent.
pub fn real_mnist_dir() -> Option<PathBuf> {
    let dir = shared_dir().join("data/mnist");
    if !dir.is_dir() {
        eprintln!("skipping: {} is absent", dir.display());
        return None;
    }
    Some(dir)
}

/// The real MNIST files, or None (with a note) where `../shared` is absent or, without the
/// `gz` feature, cannot be read (the shared files are gzip'd).
pub fn real_mnist() -> Option<Mnist> {
    let dir = real_mnist_dir()?;
    if !cfg!(feature = "gz") {
        eprintln!("skipping: the gzip'd MNIST files need the gz feature");
        return None;
    }
    Some(Mnist::load(&dir).expect("the shared MNIST files load"))
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

/// Reads a reference `.npy` file.
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
