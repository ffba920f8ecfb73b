//! Matrix-multiply kernels on the shapes softnet runs, naive vs blocked vs narrow, with
//! FLOP throughput; the blocked gemm on every SIMD level against `matrixmultiply`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use softnet::kernels::simd::{with_level, Level};
use softnet::kernels::{gemm, naive, narrow, GemmWorkspace, MatRef};
use std::hint::black_box;
use std::time::Duration;

fn data(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 31 + salt) % 97) as f32 / 97.0 - 0.5)
        .collect()
}

/// The first `rows` training images when `../shared` has them (the pixels a training step
/// reads, four in five zero), else synthetic digits: a zero border around noise.
fn training_pixels(rows: usize) -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    match softnet::data::Mnist::load(&dir) {
        Ok(m) => m.train.pixels()[..rows * 784].to_vec(),
        Err(_) => (0..rows * 784)
            .map(|i| {
                let (y, x) = (i % 784 / 28, i % 28);
                if (6..22).contains(&y) && (8..20).contains(&x) && i % 3 == 0 {
                    (i * 31 % 251) as u8
                } else {
                    0
                }
            })
            .collect(),
    }
}

/// (name, m, n, k): forward products of a batch and the test set.
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("100x784x10", 100, 10, 784),
    ("50x784x10", 50, 10, 784),
    ("100x784x256", 100, 256, 784),
    ("10000x784x10", 10_000, 10, 784),
];

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward x·W");
    for &(name, m, n, k) in SHAPES {
        let (a, b) = (data(m * k, 1), data(k * n, 2));
        let mut out = vec![0.0; m * n];
        let mut ws = GemmWorkspace::new();
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(BenchmarkId::new("blocked", name), |bench| {
            bench.iter(|| {
                gemm(
                    m,
                    n,
                    k,
                    MatRef::row_major(&a, k),
                    MatRef::row_major(&b, n),
                    &mut out,
                    n,
                    false,
                    &mut ws,
                );
                black_box(&out);
            })
        });
        if (narrow::MIN_WIDTH..=narrow::MAX_WIDTH).contains(&n) {
            group.bench_function(BenchmarkId::new("narrow", name), |bench| {
                bench.iter(|| {
                    narrow::matmul(m, k, n, &a[..], &b, &mut out);
                    black_box(&out);
                })
            });
        }
        if m * n * k <= 1_000_000 {
            group.bench_function(BenchmarkId::new("naive", name), |bench| {
                bench.iter(|| {
                    naive::gemm(
                        m,
                        n,
                        k,
                        MatRef::row_major(&a, k),
                        MatRef::row_major(&b, n),
                        &mut out,
                        n,
                        false,
                    );
                    black_box(&out);
                })
            });
        }
    }
    group.finish();
}

fn weight_gradient(c: &mut Criterion) {
    let mut group = c.benchmark_group("weight gradient xᵀ·dZ");
    for &(name, m, n, k) in &SHAPES[..3] {
        // x [m, k], dZ [m, n] -> dW [k, n]
        let (x, d) = (data(m * k, 3), data(m * n, 4));
        let mut dw = vec![0.0; k * n];
        let mut ws = GemmWorkspace::new();
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(BenchmarkId::new("blocked", name), |bench| {
            bench.iter(|| {
                gemm(
                    k,
                    n,
                    m,
                    MatRef::row_major(&x, k).t(),
                    MatRef::row_major(&d, n),
                    &mut dw,
                    n,
                    false,
                    &mut ws,
                );
                black_box(&dw);
            })
        });
        if n <= narrow::MAX_WIDTH {
            group.bench_function(BenchmarkId::new("narrow", name), |bench| {
                bench.iter(|| {
                    narrow::matmul_tn(m, k, n, &x[..], &d, &mut dw);
                    black_box(&dw);
                })
            });
            // What a training step runs: the batch's bytes, rows of zero blocks skipped.
            let pixels = training_pixels(m);
            group.bench_function(BenchmarkId::new("narrow, MNIST pixels", name), |bench| {
                bench.iter(|| {
                    narrow::matmul_tn(m, k, n, &pixels[..], &d, &mut dw);
                    black_box(&dw);
                })
            });
        }
    }
    group.finish();
}

/// (name, m, n, k, A transposed, B transposed): the products of an MLP 784-256-10 step on a
/// batch of 100 (forward, the weight gradient `Xᵀ·dZ`, the input gradient `dZ·Wᵀ`) and
/// the CNN's im2col products on a batch of 50.
const GEMM_SHAPES: &[(&str, usize, usize, usize, bool, bool)] = &[
    ("100x784x256 X·W", 100, 256, 784, false, false),
    ("100x256x10 H·W2", 100, 10, 256, false, false),
    ("784x100x256 Xᵀ·dZ", 784, 256, 100, true, false),
    ("100x256x784 dZ·Wᵀ", 100, 784, 256, false, true),
    ("9800x800x64 conv2 im2col", 9800, 64, 800, false, false),
    ("39200x25x32 conv1 im2col", 39_200, 32, 25, false, false),
];

fn against_matrixmultiply(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm vs matrixmultiply");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    for &(name, m, n, k, ta, tb) in GEMM_SHAPES {
        let (a, b) = (data(m * k, 5), data(k * n, 6));
        // Transposed operands are stored the other way round and read through strides.
        let a_ref = if ta {
            MatRef::row_major(&a, m).t()
        } else {
            MatRef::row_major(&a, k)
        };
        let b_ref = if tb {
            MatRef::row_major(&b, k).t()
        } else {
            MatRef::row_major(&b, n)
        };
        let mut out = vec![0.0; m * n];
        let mut ws = GemmWorkspace::new();
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        for level in Level::supported() {
            group.bench_function(
                BenchmarkId::new(format!("softnet {level}"), name),
                |bench| {
                    with_level(level, || {
                        bench.iter(|| {
                            gemm(m, n, k, a_ref, b_ref, &mut out, n, false, &mut ws);
                            black_box(&out);
                        })
                    })
                },
            );
        }
        group.bench_function(BenchmarkId::new("matrixmultiply", name), |bench| {
            bench.iter(|| {
                // SAFETY: the strides describe `a`, `b` and `out` as the m x k, k x n and
                // m x n matrices they hold.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        a_ref.row_stride as isize,
                        a_ref.col_stride as isize,
                        b.as_ptr(),
                        b_ref.row_stride as isize,
                        b_ref.col_stride as isize,
                        0.0,
                        out.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                };
                black_box(&out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, forward, weight_gradient, against_matrixmultiply);
criterion_main!(benches);
