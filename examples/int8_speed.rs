//! Times `Classifier` on model files, interleaved so that the machine's moods touch every
//! file alike: one image (the median of many single predictions) and the 10,000 test images
//! (`predict_batch`), each the median over rounds, with the test accuracy.
//!
//! ```text
//! softnet quantize --model cnn.safetensors -o cnn8.safetensors
//! MNIST_DIR=... cargo run --release --example int8_speed -- cnn.safetensors cnn8.safetensors
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use softnet::data::{Mnist, PIXELS};
use softnet::kernels::conv_int8::Int8Path;
use softnet::Classifier;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let paths: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if paths.is_empty() {
        return Err("usage: int8_speed MODEL.safetensors ...".into());
    }
    let dir = std::env::var_os("MNIST_DIR").ok_or("set MNIST_DIR")?;
    let test = Mnist::load(Path::new(&dir))?.test;
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let classifiers = paths
        .iter()
        .map(|p| Classifier::from_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    let n = test.len();
    let (mut classes, mut confidence) = (vec![0u8; n], vec![0f32; n]);
    let mut one = vec![Vec::new(); paths.len()];
    let mut all = vec![Vec::new(); paths.len()];
    let image: &[u8; PIXELS] = test.image(0).try_into()?;
    for c in &classifiers {
        c.predict(image); // the thread's scratch
    }
    for _ in 0..rounds {
        for (i, c) in classifiers.iter().enumerate() {
            let mut singles = Vec::new();
            for k in 0..200 {
                let image: &[u8; PIXELS] = test.image(k).try_into()?;
                let t = Instant::now();
                std::hint::black_box(c.predict(std::hint::black_box(image)));
                singles.push(t.elapsed().as_secs_f64());
            }
            one[i].push(median(&mut singles));
            let t = Instant::now();
            c.predict_batch(test.pixels(), &mut classes, &mut confidence);
            all[i].push(t.elapsed().as_secs_f64());
        }
    }
    println!(
        "simd {}, int8 path {}",
        softnet::kernels::simd::describe(),
        Int8Path::current().name()
    );
    for (i, c) in classifiers.iter().enumerate() {
        c.predict_batch(test.pixels(), &mut classes, &mut confidence);
        let correct = classes
            .iter()
            .zip(test.labels())
            .filter(|(a, b)| a == b)
            .count();
        println!(
            "{} ({:?}, {} bytes): accuracy {:.2}%, one image {:.1} µs, {n} images {:.1} ms",
            paths[i].display(),
            c.precision(),
            std::fs::metadata(&paths[i])?.len(),
            100.0 * correct as f64 / n as f64,
            1e6 * median(&mut one[i]),
            1e3 * median(&mut all[i])
        );
    }
    Ok(())
}
