//! Matrix-multiply kernels on the shapes softnet runs, naive vs blocked vs narrow, the
//! blocked gemm on every SIMD level against `matrixmultiply`, and the tutorial CNN's
//! convolution passes (naive, every SIMD level, im2col) and max-pool passes, with FLOP
//! throughput.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use softnet::kernels::conv::{self, ConvGeometry, Padding};
use softnet::kernels::pool::{self, PoolGeometry};
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
/// batch of 100 (forward, the weight gradient `Xᵀ·dZ`, the input gradient `dZ·Wᵀ`), the
/// CNN's im2col products on a batch of 50 and its dense layer's three products on a batch
/// of 50 (as the trainer runs them, over the whole batch).
const GEMM_SHAPES: &[(&str, usize, usize, usize, bool, bool)] = &[
    ("100x784x256 X·W", 100, 256, 784, false, false),
    ("100x256x10 H·W2", 100, 10, 256, false, false),
    ("784x100x256 Xᵀ·dZ", 784, 256, 100, true, false),
    ("100x256x784 dZ·Wᵀ", 100, 784, 256, false, true),
    ("9800x800x64 conv2 im2col", 9800, 64, 800, false, false),
    ("39200x25x32 conv1 im2col", 39_200, 32, 25, false, false),
    ("50x3136x1024 fc1 X·W", 50, 1024, 3136, false, false),
    ("3136x50x1024 fc1 Xᵀ·dZ", 3136, 1024, 50, true, false),
    ("50x1024x3136 fc1 dZ·Wᵀ", 50, 3136, 1024, false, true),
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

/// (name, geometry): the tutorial CNN's two convolutions.
fn cnn_convolutions() -> [(&'static str, ConvGeometry); 2] {
    let layer = |name, (height, width, in_channels, out_channels)| {
        let g = ConvGeometry {
            height,
            width,
            in_channels,
            out_channels,
            kernel_h: 5,
            kernel_w: 5,
            stride: 1,
            padding: Padding::Same,
        };
        (name, g)
    };
    [
        layer("conv1 28x28x1->32 5x5", (28, 28, 1, 32)),
        layer("conv2 14x14x32->64 5x5", (14, 14, 32, 64)),
    ]
}

/// The tutorial CNN's layers at batch 50: each convolution pass by the naive reference
/// (f64 sums, on a batch of 5: the spec, not a contender), by the kernels at every SIMD level
/// this CPU runs (direct where the channels come in vectors of 16, else im2col + gemm) and
/// by im2col + gemm at the process's level, with its FLOPs (`2·N·H_out·W_out·C_out·K·K·C_in`
/// for each pass, every tap counted, the padding included); and each max-pool pass with
/// its comparisons or additions.
fn cnn(c: &mut Criterion) {
    const BATCH: usize = 50;
    /// The naive passes' batch: a tenth, so that a sample takes a second, not ten.
    const NAIVE_BATCH: usize = 5;
    let mut group = c.benchmark_group("cnn batch 50");
    group.sample_size(10);
    for (name, g) in cnn_convolutions() {
        let input = data(BATCH * g.input_len(), 5);
        let filter = data(g.filter_len(), 6);
        let bias = data(g.out_channels, 7);
        let d_out = data(BATCH * g.output_len(), 8);
        let mut out = vec![0.0; BATCH * g.output_len()];
        let mut d_input = vec![0.0; BATCH * g.input_len()];
        let (mut d_filter, mut d_bias) = (vec![0.0; g.filter_len()], vec![0.0; g.out_channels]);
        let mut scratch = vec![
            0.0;
            g.scratch_len(BATCH)
                .max(conv::im2col::scratch_len(&g, BATCH))
        ];
        let mut ws = GemmWorkspace::new();
        let flops =
            |rows: usize| (2 * rows * g.out_height() * g.out_width() * g.filter_len()) as u64;
        let (n_in, n_out) = (NAIVE_BATCH * g.input_len(), NAIVE_BATCH * g.output_len());

        // Forward.
        group.throughput(Throughput::Elements(flops(NAIVE_BATCH)));
        group.bench_function(BenchmarkId::new("forward naive, batch 5", name), |bench| {
            bench.iter(|| {
                naive::conv2d_forward(
                    &g,
                    NAIVE_BATCH,
                    &input[..n_in],
                    &filter,
                    &bias,
                    &mut out[..n_out],
                );
                black_box(&out);
            })
        });
        group.throughput(Throughput::Elements(flops(BATCH)));
        for level in Level::supported() {
            group.bench_function(
                BenchmarkId::new(format!("forward {level}"), name),
                |bench| {
                    with_level(level, || {
                        bench.iter(|| {
                            conv::conv2d_forward(
                                &g,
                                BATCH,
                                &input,
                                &filter,
                                &bias,
                                &mut out,
                                &mut scratch,
                                &mut ws,
                            );
                            black_box(&out);
                        })
                    })
                },
            );
        }
        group.bench_function(BenchmarkId::new("forward im2col", name), |bench| {
            bench.iter(|| {
                conv::im2col::conv2d_forward(
                    &g,
                    BATCH,
                    &input,
                    &filter,
                    &bias,
                    &mut out,
                    &mut scratch,
                    &mut ws,
                );
                black_box(&out);
            })
        });

        // The input's gradient.
        group.throughput(Throughput::Elements(flops(NAIVE_BATCH)));
        group.bench_function(
            BenchmarkId::new("backward input naive, batch 5", name),
            |bench| {
                bench.iter(|| {
                    naive::conv2d_backward_input(
                        &g,
                        NAIVE_BATCH,
                        &d_out[..n_out],
                        &filter,
                        &mut d_input[..n_in],
                    );
                    black_box(&d_input);
                })
            },
        );
        group.throughput(Throughput::Elements(flops(BATCH)));
        for level in Level::supported() {
            group.bench_function(
                BenchmarkId::new(format!("backward input {level}"), name),
                |bench| {
                    with_level(level, || {
                        bench.iter(|| {
                            conv::conv2d_backward_input(
                                &g,
                                BATCH,
                                &d_out,
                                &filter,
                                &mut d_input,
                                &mut scratch,
                                &mut ws,
                            );
                            black_box(&d_input);
                        })
                    })
                },
            );
        }
        group.bench_function(BenchmarkId::new("backward input im2col", name), |bench| {
            bench.iter(|| {
                conv::im2col::conv2d_backward_input(
                    &g,
                    BATCH,
                    &d_out,
                    &filter,
                    &mut d_input,
                    &mut scratch,
                    &mut ws,
                );
                black_box(&d_input);
            })
        });

        // The filter's (and bias's) gradient.
        group.throughput(Throughput::Elements(flops(NAIVE_BATCH)));
        group.bench_function(
            BenchmarkId::new("backward filter naive, batch 5", name),
            |bench| {
                bench.iter(|| {
                    naive::conv2d_backward_filter(
                        &g,
                        NAIVE_BATCH,
                        &input[..n_in],
                        &d_out[..n_out],
                        &mut d_filter,
                        &mut d_bias,
                    );
                    black_box(&d_filter);
                })
            },
        );
        group.throughput(Throughput::Elements(flops(BATCH)));
        for level in Level::supported() {
            group.bench_function(
                BenchmarkId::new(format!("backward filter {level}"), name),
                |bench| {
                    with_level(level, || {
                        bench.iter(|| {
                            conv::conv2d_backward_filter(
                                &g,
                                BATCH,
                                &input,
                                &d_out,
                                &mut d_filter,
                                &mut d_bias,
                                &mut scratch,
                                &mut ws,
                            );
                            black_box(&d_filter);
                        })
                    })
                },
            );
        }
        group.bench_function(BenchmarkId::new("backward filter im2col", name), |bench| {
            bench.iter(|| {
                conv::im2col::conv2d_backward_filter(
                    &g,
                    BATCH,
                    &input,
                    &d_out,
                    &mut d_filter,
                    &mut d_bias,
                    &mut scratch,
                    &mut ws,
                );
                black_box(&d_filter);
            })
        });
    }
    let pools = [
        ("pool1 28x28x32 2/2", (28, 28, 32)),
        ("pool2 14x14x64 2/2", (14, 14, 64)),
    ];
    for (name, (height, width, channels)) in pools {
        let g = PoolGeometry {
            height,
            width,
            channels,
            size: 2,
            stride: 2,
        };
        let input = data(BATCH * g.input_len(), 9);
        let d_out = data(BATCH * g.output_len(), 10);
        let mut out = vec![0.0; BATCH * g.output_len()];
        let mut argmax = vec![0u32; BATCH * g.output_len()];
        let mut d_input = vec![0.0; BATCH * g.input_len()];
        // One comparison per window value.
        group.throughput(Throughput::Elements(
            (BATCH * g.output_len() * g.size * g.size) as u64,
        ));
        group.bench_function(BenchmarkId::new("max-pool forward", name), |bench| {
            bench.iter(|| {
                pool::max_pool_forward(&g, BATCH, &input, &mut out, Some(&mut argmax));
                black_box(&out);
            })
        });
        group.bench_function(
            BenchmarkId::new("max-pool forward, no argmax", name),
            |bench| {
                bench.iter(|| {
                    pool::max_pool_forward(&g, BATCH, &input, &mut out, None);
                    black_box(&out);
                })
            },
        );
        group.bench_function(BenchmarkId::new("max-pool backward", name), |bench| {
            bench.iter(|| {
                pool::max_pool_backward(&g, BATCH, &d_out, &argmax, &mut d_input);
                black_box(&d_input);
            })
        });
    }
    group.finish();
}

/// The tutorial CNN's convolution passes alone on one thread, at the rows the trainer and
/// the evaluator hand them: the shards of a batch of 50 (32 shards of one or two images)
/// and the evaluator's chunk (85 images: its workspace limit over the CNN's floats a row),
/// at the process's SIMD level, with their FLOPs, to read against the one-thread ceiling
/// of `softnet bench`. conv1's input gradient is never computed (nobody needs the pixels').
fn conv_kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv kernels");
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    for (name, g) in cnn_convolutions() {
        let conv1 = g.in_channels == 1;
        for rows in [1, 2, 85] {
            let input = data(rows * g.input_len(), 5);
            let filter = data(g.filter_len(), 6);
            let bias = data(g.out_channels, 7);
            let d_out = data(rows * g.output_len(), 8);
            let mut out = vec![0.0; rows * g.output_len()];
            let mut d_input = vec![0.0; rows * g.input_len()];
            let mut d_filter = vec![0.0; g.filter_len()];
            let mut d_bias = vec![0.0; g.out_channels];
            let mut scratch = vec![0.0; g.scratch_len(rows)];
            let mut ws = GemmWorkspace::new();
            let flops = (2 * rows * g.out_height() * g.out_width() * g.filter_len()) as u64;
            group.throughput(Throughput::Elements(flops));
            let id = |pass: &str| BenchmarkId::new(format!("{name} {pass}"), rows);
            group.bench_function(id("forward"), |bench| {
                bench.iter(|| {
                    let (x, f, b) = (&input, &filter, &bias);
                    conv::conv2d_forward(&g, rows, x, f, b, &mut out, &mut scratch, &mut ws);
                    black_box(&out);
                })
            });
            if !conv1 {
                group.bench_function(id("input gradient"), |bench| {
                    bench.iter(|| {
                        let (dy, f, dx) = (&d_out, &filter, &mut d_input);
                        conv::conv2d_backward_input(&g, rows, dy, f, dx, &mut scratch, &mut ws);
                        black_box(&d_input);
                    })
                });
            }
            group.bench_function(id("filter gradient"), |bench| {
                bench.iter(|| {
                    let (x, dy, df, db) = (&input, &d_out, &mut d_filter, &mut d_bias);
                    let sc = &mut scratch;
                    conv::conv2d_backward_filter(&g, rows, x, dy, df, db, sc, &mut ws);
                    black_box(&d_filter);
                })
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    forward,
    weight_gradient,
    against_matrixmultiply,
    cnn,
    conv_kernels
);
criterion_main!(benches);
